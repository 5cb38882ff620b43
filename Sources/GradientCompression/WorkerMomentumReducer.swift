import Collectives
import LinearAlgebra

/// Any reducer with momentum moved from the optimizer to before it: each worker keeps its own
/// momentum m_w ← μ·m_w + g_w, and the wrapped reducer reduces m_w instead of g_w
/// (`worker-momentum=μ` on any reducer's specification), or with `worker-nesterov=true`
/// g_w + μ·m_w (Nesterov in PyTorch's form, the trainer's default optimizer). The optimizer then applies the reduced
/// momentum with no momentum of its own (`appliesMomentum`), and weight decay to that step.
///
/// For a linear reducer (all-reduce) this is ordinary momentum SGD: the mean of the m_w is the
/// momentum of the mean gradient, up to float rounding. For a compressor it changes what is
/// compressed: a sum over about 1/(1 − μ) steps, in which the signal adds up coherently and
/// zero-mean noise only as a square root (its energy ×1/(1 − μ²), the signal's ×1/(1 − μ)² for a
/// steady gradient). That is DGC's momentum correction (Lin et al. 2018, ALGORITHMS.md §5.5)
/// applied to any compressor; under DP-SGD the noise it averages is the Gaussian mechanism's, so a
/// low-rank or sparse compressor picks directions of the signal more often than of the noise.
/// Worker momentum is a function of the worker's noised gradients only: post-processing.
public struct WorkerMomentumReducer: GradientReducer {
    public private(set) var inner: any GradientReducer
    public let momentum: Float
    public let nesterov: Bool
    /// m_w per gradient tensor; empty before the first step.
    private var momenta: [Tensor] = []

    /// The option keys, accepted by every reducer that does not apply momentum itself.
    public static let optionKey = "worker-momentum", nesterovKey = "worker-nesterov"

    public init(_ inner: any GradientReducer, momentum: Float, nesterov: Bool = false) throws {
        guard !inner.appliesMomentum else {
            throw GradientCompressionError.invalidOption("\(inner.name) applies momentum itself; \(Self.optionKey) would apply it twice")
        }
        guard momentum.isFinite, momentum > 0, momentum < 1 else {
            throw GradientCompressionError.invalidOption("\(Self.optionKey) must be in (0, 1) (got \(momentum))")
        }
        self.inner = inner
        self.momentum = momentum
        self.nesterov = nesterov
    }

    /// The wrapped reducer's name with the option among its own, so that the name parses back.
    public var name: String {
        let option = "\(Self.optionKey)=\(momentum)" + (nesterov ? ",\(Self.nesterovKey)=true" : "")
        let base = inner.name
        if base.hasSuffix(")") { return String(base.dropLast()) + "," + option + ")" }
        return base + "(" + option + ")"
    }

    public var appliesMomentum: Bool { true }
    public var bucketSupport: BucketSupport { inner.bucketSupport }
    public mutating func prepare(stepsPerEpoch: Int) { inner.prepare(stepsPerEpoch: stepsPerEpoch) }

    /// m_i ← μ·m_i + g_i and g_i ← m_i (Nesterov: g_i + μ·m_i) for the tensors `tensors` of the list `shapes` describes.
    private mutating func accumulate(_ gradients: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]]) throws {
        try BucketCheck.validate(gradients, tensors: tensors, of: shapes)
        if momenta.isEmpty { momenta = shapes.map { Tensor(shape: $0) } }
        guard momenta.count == shapes.count else {
            throw GradientCompressionError.tensorCountMismatch(expected: momenta.count, found: shapes.count)
        }
        for (i, shape) in shapes.enumerated() where momenta[i].shape != shape {
            throw GradientCompressionError.shapeMismatch(tensor: i, expected: momenta[i].shape, found: shape)
        }
        let mu = momentum, nesterov = self.nesterov
        for (position, i) in tensors.enumerated() {
            gradients[position].withUnsafeMutableBufferPointer { g in
                momenta[i].withUnsafeMutableBufferPointer { m in
                    for j in 0..<g.count {
                        m[j] = mu * m[j] + g[j]
                        g[j] = nesterov ? g[j] + mu * m[j] : m[j]
                    }
                }
            }
        }
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        try accumulate(&gradients, tensors: 0..<gradients.count, of: gradients.map(\.shape))
        return try inner.reduce(&gradients, over: group)
    }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        try accumulate(&bucket, tensors: tensors, of: shapes)
        return try inner.reduce(&bucket, tensors: tensors, of: shapes, over: group)
    }

    public mutating func finishStep() { inner.finishStep() }

    public func saveState(to archive: inout StateWriter) {
        archive.write("\(Self.optionKey):\(name)")
        archive.write(momenta.count)
        for m in momenta { archive.write(m) }
        inner.saveState(to: &archive)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("\(Self.optionKey):\(name)")
        let count = try archive.readInt()
        guard (0...1 << 20).contains(count) else {
            throw StateArchiveError.unexpectedValue(expected: "\(Self.optionKey) tensor count", offset: archive.offset)
        }
        momenta = try (0..<count).map { _ in try archive.readTensor() }
        try inner.restoreState(from: &archive)
    }
}
