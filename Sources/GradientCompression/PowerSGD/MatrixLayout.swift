import Collectives
import LinearAlgebra

/// How a list of gradient tensors is cut into low-rank-compressed matrices and one
/// uncompressed remainder, with the offsets of every tensor in the packed buffers
/// (ALGORITHMS.md §1.1–§1.3).
///
/// - Tensor `i` of shape `(n₀, n₁, …)` is the matrix `n × m`, `n = n₀`, `m = Π nᵢ₍ᵢ≥₁₎`.
/// - Its effective rank is `min(r, n, m)`; it is compressed iff
///   `(n + m)·r_eff·minCompressionRate < n·m` (the PyTorch hook's rule, §1.2), so every 1-D
///   tensor (an `n × 1` matrix) and every small matrix goes into the uncompressed buffer.
/// - P factors (`n × r_eff`, row-major) of all compressed tensors are packed back to back in
///   tensor order, Q factors (`m × r_eff`) likewise, and their error-feedback memories
///   (`n × m`) too: one buffer per kind, so each step is 3 collectives.
public struct MatrixLayout: Sendable, Equatable {
    /// One tensor's place in the layout.
    public struct Entry: Sendable, Equatable {
        public var shape: [Int]
        public var rows: Int
        public var columns: Int
        /// Effective rank (0 for uncompressed tensors).
        public var rank: Int
        public var isCompressed: Bool { rank > 0 }
        public var count: Int { rows * columns }
        /// Offsets (in floats) into the P, Q, error and uncompressed buffers.
        public var pOffset = 0, qOffset = 0, errorOffset = 0, uncompressedOffset = 0
    }

    public private(set) var entries: [Entry] = []
    /// Whether same-shape matrices are batched (their blocks then follow `compressedOrder`).
    public let groupSameShapes: Bool
    public private(set) var pCount = 0
    public private(set) var qCount = 0
    /// Elements of all compressed tensors (the size of the error-feedback memory).
    public private(set) var compressedCount = 0
    public private(set) var uncompressedCount = 0

    /// The compressed tensors' indices in the order the kernels visit them: tensor order, or
    /// with `groupSameShapes` each group of same-shape (n, m, r) matrices back to back, groups
    /// in order of first appearance, their P and Q blocks contiguous in the packed buffers
    /// (the batched layout of the PyTorch hook's `batch_tensors_with_same_shape`).
    public private(set) var compressedOrder: [Int] = []

    /// The tensors a step covers: all of them, or one bucket's (`restricted(to:)`).
    public private(set) var tensors: Range<Int> = 0..<0
    /// The parts of the packed P, Q and uncompressed buffers that hold those tensors' blocks:
    /// what a (bucket's) step all-reduces.
    public private(set) var pWindow: Range<Int> = 0..<0
    public private(set) var qWindow: Range<Int> = 0..<0
    public private(set) var uncompressedWindow: Range<Int> = 0..<0

    /// The compressed entries with their tensor indices, in `compressedOrder`.
    public var compressedEntries: [(index: Int, entry: Entry)] { compressedOrder.map { ($0, entries[$0]) } }

    /// The layout of `shapes` with rank `ranks[i]` requested for tensor i (one rank for all
    /// when `ranks` has one element).
    public init(shapes: [[Int]], ranks: [Int], minCompressionRate: Double, groupSameShapes: Bool = false) {
        self.groupSameShapes = groupSameShapes
        precondition(ranks.count == 1 || ranks.count == shapes.count)
        for (index, shape) in shapes.enumerated() {
            let rows = shape.first ?? 1
            let total = Tensor.elementCount(shape)
            let columns = rows == 0 ? Tensor.elementCount(Array(shape.dropFirst())) : total / rows
            let requested = ranks.count == 1 ? ranks[0] : ranks[index]
            let r = max(0, min(requested, rows, columns))
            var entry = Entry(shape: shape, rows: rows, columns: columns, rank: 0)
            // Compress only when the factors are at least `minCompressionRate` times smaller.
            if r > 0, Double((rows + columns) * r) * minCompressionRate < Double(rows * columns) {
                entry.rank = r
                entry.pOffset = pCount; pCount += rows * r
                entry.qOffset = qCount; qCount += columns * r
                entry.errorOffset = compressedCount; compressedCount += rows * columns
            } else {
                entry.uncompressedOffset = uncompressedCount; uncompressedCount += total
            }
            entries.append(entry)
        }
        compressedOrder = entries.indices.filter { entries[$0].isCompressed }
        if groupSameShapes {
            var groups: [[Int]] = [], keys: [[Int]] = []
            for index in compressedOrder {
                let key = [entries[index].rows, entries[index].columns, entries[index].rank]
                if let g = keys.firstIndex(of: key) { groups[g].append(index) } else { keys.append(key); groups.append([index]) }
            }
            compressedOrder = groups.flatMap { $0 }
            var p = 0, q = 0
            for index in compressedOrder {
                entries[index].pOffset = p; p += entries[index].rows * entries[index].rank
                entries[index].qOffset = q; q += entries[index].columns * entries[index].rank
            }
        }
        tensors = entries.indices
        pWindow = 0..<pCount
        qWindow = 0..<qCount
        uncompressedWindow = 0..<uncompressedCount
    }

    /// This layout seen by a step of the tensors `range` only (a bucket): the same offsets and
    /// buffer sizes, so the state of every tensor stays where the whole list keeps it, with the
    /// compressed order and the windows cut to `range`. Without `groupSameShapes` the blocks lie
    /// in tensor order, so a range of tensors is a contiguous window of each packed buffer.
    public func restricted(to range: Range<Int>) -> MatrixLayout {
        precondition(!groupSameShapes, "a bucket of a layout with same-shape groups is not contiguous")
        var part = self
        part.tensors = range
        part.compressedOrder = compressedOrder.filter(range.contains)
        let compressed = part.compressedOrder.map { entries[$0] }
        let uncompressed = range.map { entries[$0] }.filter { !$0.isCompressed }
        func window(_ lower: Int?, _ upper: Int?) -> Range<Int> { (lower ?? 0) ..< (upper ?? lower ?? 0) }
        part.pWindow = window(compressed.first?.pOffset, compressed.last.map { $0.pOffset + $0.rows * $0.rank })
        part.qWindow = window(compressed.first?.qOffset, compressed.last.map { $0.qOffset + $0.columns * $0.rank })
        part.uncompressedWindow = window(uncompressed.first?.uncompressedOffset,
                                         uncompressed.last.map { $0.uncompressedOffset + $0.count })
        return part
    }

    public var shapes: [[Int]] { entries.map(\.shape) }
    public var totalCount: Int { compressedCount + uncompressedCount }

    /// Floats one worker contributes per compressed step: Σ r(n+m) + uncompressed elements.
    public var payloadFloats: Int { pCount + qCount + uncompressedCount }

    /// Throws unless `gradients` have exactly the shapes of this layout (checked locally on
    /// every step; a worker that throws here fails the whole group through the communicator).
    public func validate(_ gradients: [Tensor]) throws {
        guard gradients.count == entries.count else {
            throw GradientCompressionError.tensorCountMismatch(expected: entries.count, found: gradients.count)
        }
        for (index, tensor) in gradients.enumerated() where tensor.shape != entries[index].shape {
            throw GradientCompressionError.shapeMismatch(tensor: index, expected: entries[index].shape, found: tensor.shape)
        }
    }

    /// Checks that every worker holds the same list of shapes: one all-gather of the encoded
    /// shapes (a few hundred bytes), made once when a reducer builds its state. Every worker
    /// receives the same messages, so every worker throws the same
    /// `shapesDifferAcrossWorkers` error naming the first tensor that differs — nobody hangs.
    public static func checkAgreement(_ shapes: [[Int]], over group: any Communicator) throws {
        guard group.size > 1 else { return }
        let all = try group.allGather(encode(shapes))
        let decoded = try all.enumerated().map { rank, bytes -> [[Int]] in
            guard let list = decode(bytes) else {
                throw GradientCompressionError.corruptMessage("worker \(rank)'s shape list (\(bytes.count) bytes)")
            }
            return list
        }
        let reference = decoded[0]
        for rank in 1..<decoded.count where decoded[rank] != reference {
            let other = decoded[rank]
            let index = (0..<min(reference.count, other.count)).first(where: { reference[$0] != other[$0] }) ?? min(reference.count, other.count)
            throw GradientCompressionError.shapesDifferAcrossWorkers(
                tensor: index, rank: 0, shape: index < reference.count ? reference[index] : nil,
                otherRank: rank, otherShape: index < other.count ? other[index] : nil)
        }
    }

    /// Shapes as little-endian UInt32 words: count, then per tensor its rank and extents.
    static func encode(_ shapes: [[Int]]) -> [UInt8] {
        var words: [UInt32] = [UInt32(shapes.count)]
        for shape in shapes { words.append(UInt32(shape.count)); words += shape.map { UInt32(truncatingIfNeeded: $0) } }
        return words.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
    }

    static func decode(_ bytes: [UInt8]) -> [[Int]]? {
        guard bytes.count % 4 == 0 else { return nil }
        let words = stride(from: 0, to: bytes.count, by: 4).map { i in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) }
        }
        guard let count = words.first else { return nil }
        var shapes: [[Int]] = []
        var i = 1
        for _ in 0..<count {
            guard i < words.count else { return nil }
            let dims = Int(words[i]); i += 1
            guard i + dims <= words.count else { return nil }
            shapes.append(words[i..<(i + dims)].map { Int($0) }); i += dims
        }
        return i == words.count ? shapes : nil
    }
}
