import Collectives
import LinearAlgebra

/// signSGD with majority vote and Signum (Bernstein et al.; ALGORITHMS.md §5.2).
///
/// Each worker sends sign(m_w), 1 bit per element, where m_w = g_w (signSGD, `momentum` = 0) or
/// the worker's momentum m_w ← β·m_w + (1 − β)·g_w (Signum). The bits are all-gathered (no MPI
/// "majority" collective exists) and every worker computes the vote v = sign(Σ_w sign(m_w)).
///
/// Rules fixed here (§5.2 leaves them open):
/// - zero rule: a worker's element equal to ±0 votes +1 (one bit cannot say 0; `SignCompressor`);
/// - tie rule: with an even number of workers a coordinate whose votes sum to 0 gets v = 0,
///   i.e. no step on it. A split vote carries no information about the direction, and 0 keeps
///   the rule symmetric in the sign (GRACE's Σ ≥ 0 → +1 would always push ties one way).
/// The output replaces the gradients with v ∈ {−1, 0, +1}; the optimizer multiplies by the
/// learning rate (with no momentum of its own under Signum, `appliesMomentum`) (and adds weight decay after the vote, as in the Bernstein code). No error
/// feedback (§5.2).
public struct MajorityVoteReducer: GradientReducer {
    /// β of Signum's momentum; 0 gives plain signSGD.
    public let momentum: Float
    public private(set) var step = 0
    var buffers: [Tensor] = []
    var layout = GradientLayout()
    let signs = SignCompressor(scaling: .none)

    public init(momentum: Float = 0) throws {
        guard momentum >= 0, momentum < 1 else {
            throw GradientCompressionError.invalidOption("signum: momentum=\(momentum) must be in [0, 1)")
        }
        self.momentum = momentum
    }

    public var name: String { momentum == 0 ? "signsgd" : ReducerSpecification.reducerName("signum", [("momentum", "\(momentum)")]) }

    /// Signum votes with the signs of each worker's momentum: the optimizer adds none.
    public var appliesMomentum: Bool { momentum > 0 }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        try layout.check(gradients)
        var sent = gradients
        if momentum > 0 {
            if buffers.isEmpty { buffers = gradients.map { Tensor(shape: $0.shape) } }
            for i in gradients.indices {
                // m ← β·m + (1 − β)·g
                gradients[i].withUnsafeBufferPointer { g in
                    buffers[i].withUnsafeMutableBufferPointer { m in
                        Vector.scale(m, by: momentum)
                        Vector.axpy(1 - momentum, g, m)
                    }
                }
            }
            sent = buffers
        }
        var frame: [UInt8] = []
        for (i, t) in sent.enumerated() {
            frame.append(contentsOf: try signs.encode(t, key: CompressionKey(rank: group.rank, step: step, tensor: i)))
        }
        let frames = try group.allGather(frame)
        var votes = gradients.map { Tensor(shape: $0.shape) }
        for (rank, frame) in frames.enumerated() {
            try frame.withUnsafeBytes { bytes in
                var reader = ByteReader(bytes, context: "\(name) frame from worker \(rank)")
                for i in votes.indices {
                    let shape = votes[i].shape
                    let message = try reader.take(signs.fixedMessageBytes(shape: shape)!, "tensor \(i)'s signs")
                    try votes[i].withUnsafeMutableBufferPointer {
                        try signs.decode(message, shape: shape, key: CompressionKey(rank: rank, step: step, tensor: i),
                                         weight: 1, accumulatingInto: $0)
                    }
                }
                try reader.expectEnd()
            }
        }
        // Vote sums are exact small integers in fp32; sign with sign(0) = 0 (the tie rule).
        for i in votes.indices {
            votes[i].withUnsafeMutableBufferPointer { v in
                for j in v.indices { v[j] = v[j] > 0 ? 1 : (v[j] < 0 ? -1 : 0) }
            }
        }
        gradients = votes
        step += 1
        return meter.finish(uncompressedBytes: 4 * GradientLayout.elementCount(gradients))
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("majority-vote:\(name)")
        archive.write(step)
        layout.save(to: &archive)
        archive.write(buffers.count)
        for b in buffers { archive.write(b) }
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("majority-vote:\(name)")
        step = try archive.readInt()
        try layout.restore(from: &archive)
        let count = try archive.readInt()
        guard count == 0 || count == layout.shapes?.count else {
            throw StateArchiveError.unexpectedValue(expected: "momentum buffer count", offset: archive.offset)
        }
        buffers = try (0..<count).map { _ in try archive.readTensor() }
    }
}

extension MajorityVoteReducer {
    static let signSGDCatalogEntry = ReducerCatalog.Entry(
        name: "signsgd", summary: "signSGD with majority vote: each worker sends gradient signs, the step follows the sign of their sum",
        options: []) { _, _ in try MajorityVoteReducer(momentum: 0) }

    static let signumCatalogEntry = ReducerCatalog.Entry(
        name: "signum", summary: "Signum: majority vote over the signs of each worker's momentum (momentum in the reducer)",
        options: [ReducerOption("momentum", .number(0...0.999999), default: "0.9")]) { o, _ in
        try MajorityVoteReducer(momentum: Float(try o.double("momentum")))
    }
}
