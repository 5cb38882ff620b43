import Collectives
import LinearAlgebra

/// Where a tensor goes in a packed fp32 buffer: the one helper for packing gradients into a
/// contiguous buffer (one collective for many tensors) and unpacking them, used by uncompressed
/// SGD and every low-rank reducer (PowerSGD's uncompressed tensors and plain steps, PowerSGD+'s
/// refresh, exact SVD, LQ-SGD).
struct TensorPlacement {
    var tensor: Int
    var offset: Int

    /// Copies each placed tensor into `buffer` at its offset.
    static func pack(_ gradients: [Tensor], _ placements: [TensorPlacement], into buffer: UnsafeMutablePointer<Float>) {
        for placement in placements {
            gradients[placement.tensor].withUnsafeBufferPointer {
                if let base = $0.baseAddress { (buffer + placement.offset).update(from: base, count: $0.count) }
            }
        }
    }

    /// Copies each placed tensor back out of `buffer`.
    static func unpack(_ buffer: UnsafePointer<Float>, _ placements: [TensorPlacement], into gradients: inout [Tensor]) {
        for placement in placements {
            gradients[placement.tensor].withUnsafeMutableBufferPointer {
                if let base = $0.baseAddress { base.update(from: buffer + placement.offset, count: $0.count) }
            }
        }
    }

    /// Every tensor of `gradients`, back to back in order.
    static func contiguous(_ gradients: [Tensor]) -> (placements: [TensorPlacement], count: Int) {
        var offset = 0
        let placements = gradients.indices.map { index -> TensorPlacement in
            defer { offset += gradients[index].count }
            return TensorPlacement(tensor: index, offset: offset)
        }
        return (placements, offset)
    }

    /// Packs the placed tensors into one buffer of `count` floats, all-reduces it (mean) and
    /// unpacks the result: one collective for all of them. `buffer` is reused when it has the
    /// size already (a reducer that keeps it allocates once).
    static func allReduceMean(_ gradients: inout [Tensor], _ placements: [TensorPlacement], count: Int,
                              reusing buffer: inout [Float], over group: any Communicator) throws {
        if buffer.count != count { buffer = [Float](repeating: 0, count: count) }
        try buffer.withUnsafeMutableBufferPointer { b in
            if let base = b.baseAddress { pack(gradients, placements, into: base) }
            try group.allReduce(b, operation: .mean)
            if let base = b.baseAddress { unpack(base, placements, into: &gradients) }
        }
    }

    /// `allReduceMean` with a buffer of its own.
    static func allReduceMean(_ gradients: inout [Tensor], _ placements: [TensorPlacement], count: Int,
                              over group: any Communicator) throws {
        var buffer: [Float] = []
        try allReduceMean(&gradients, placements, count: count, reusing: &buffer, over: group)
    }
}

extension MatrixLayout {
    /// The uncompressed tensors' places in the packed uncompressed buffer (of `tensors`).
    var uncompressedPlacements: [TensorPlacement] {
        entries.enumerated().compactMap { index, entry in
            entry.isCompressed || entry.count == 0 || !tensors.contains(index) ? nil : TensorPlacement(tensor: index, offset: entry.uncompressedOffset)
        }
    }

    /// Copies the uncompressed tensors of `gradients` into their packed buffer.
    func packUncompressed(_ gradients: [Tensor], into buffer: inout [Float]) {
        let placements = uncompressedPlacements
        buffer.withUnsafeMutableBufferPointer { TensorPlacement.pack(gradients, placements, into: $0.baseAddress!) }
    }

    /// Copies the packed uncompressed buffer back into its tensors.
    func unpackUncompressed(_ buffer: [Float], into gradients: inout [Tensor]) {
        let placements = uncompressedPlacements
        buffer.withUnsafeBufferPointer { TensorPlacement.unpack($0.baseAddress!, placements, into: &gradients) }
    }

    /// One mean all-reduce of all uncompressed tensors, in place.
    func allReduceUncompressed(_ gradients: inout [Tensor], over group: any Communicator) throws {
        try TensorPlacement.allReduceMean(&gradients, uncompressedPlacements, count: uncompressedCount, over: group)
    }
}

extension StateWriter {
    /// An optional list of tensor shapes (the layout a low-rank reducer's state was built for).
    mutating func writeShapeList(_ shapes: [[Int]]?) {
        write(shapes?.count ?? -1)
        for shape in shapes ?? [] {
            write(shape.count)
            for extent in shape { write(extent) }
        }
    }
}

extension StateReader {
    /// Reads what `writeShapeList` wrote, with bounds on the counts (a corrupt archive throws).
    /// Extents are at most 2³¹ − 1 and a tensor at most 2⁴⁰ elements (zero extents aside), so the
    /// layout built from the list (rows·columns, factor sizes, offsets) cannot overflow.
    mutating func readShapeList() throws -> [[Int]]? {
        let count = try readInt()
        guard count >= 0 else { return nil }
        guard count <= 1_000_000 else { throw StateArchiveError.unexpectedValue(expected: "tensor count", offset: offset) }
        return try (0..<count).map { _ in
            let dimensions = try readInt()
            guard (0...64).contains(dimensions) else {
                throw StateArchiveError.unexpectedValue(expected: "tensor dimension count", offset: offset)
            }
            var elements = 1
            return try (0..<dimensions).map { _ in
                let extent = try readInt()
                guard (0...Int(Int32.max)).contains(extent) else {
                    throw StateArchiveError.unexpectedValue(expected: "tensor extent", offset: offset)
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: max(1, extent))
                guard !overflow, product <= 1 << 40 else {
                    throw StateArchiveError.unexpectedValue(expected: "tensor size", offset: offset)
                }
                elements = product
                return extent
            }
        }
    }
}
