import LinearAlgebra

/// Algorithm 1 of the paper (rank-r PowerSGD with error feedback and warm start; k power steps), written
/// plainly for the tests to compare `PowerSGD`'s fast step with: every worker's matrices in one
/// process, one tensor at a time, nested loops, Double sums, classical Gram–Schmidt, no packed
/// buffers, no deferred residual, no collectives (the sums over workers are loops).
///
/// It compresses the same tensors as `PowerSGD` (the hook's rule `(n+m)·r·rate < n·m`, with
/// r = min(rank, n, m)) and draws the same initial Q from the shared generator, so the two agree
/// to float rounding on inputs whose factors have no zero columns (the fast step's zero-column
/// revival is not modelled). Slow — O(W·n·m·r) per tensor with no blocking — and meant for small
/// test matrices only.
public struct PowerSGDReference {
    public let options: PowerSGD.Options
    /// Calls to `step` so far.
    public private(set) var steps = 0
    /// Per tensor: the warm-start Q (m×r, row-major), empty before the first compressed step.
    var q: [[Float]] = []
    /// Per worker, per tensor: the error memory E (n×m, row-major), empty before the first step.
    var errors: [[[Float]]] = []

    public init(_ options: PowerSGD.Options) { self.options = options }

    /// One step of all workers: `gradients[w]` is worker w's list. Returns the reduced list,
    /// the same for every worker.
    public mutating func step(_ gradients: [[Tensor]]) -> [Tensor] {
        defer { steps += 1 }
        let workers = gradients.count, tensors = gradients[0].count
        if q.isEmpty { q = Array(repeating: [], count: tensors) }
        if errors.isEmpty { errors = Array(repeating: Array(repeating: [], count: tensors), count: workers) }
        var output = gradients[0]
        for i in 0..<tensors {
            let shape = gradients[0][i].shape
            let n = shape.first ?? 1, total = Tensor.elementCount(shape), m = n == 0 ? 0 : total / n
            let r = min(options.rank, n, m)
            let compressed = r > 0 && Double((n + m) * r) * options.minCompressionRate < Double(n * m)
            guard compressed, steps >= options.startIteration else {
                for e in 0..<total {
                    var sum = 0.0
                    for w in 0..<workers { sum += Double(gradients[w][i].scalars[e]) }
                    output[i].scalars[e] = Float(sum / Double(workers))
                }
                continue
            }
            // M_w = G_w + E_w.
            var inputs = (0..<workers).map { gradients[$0][i].scalars }
            if options.errorFeedback != .off {
                for w in 0..<workers where !errors[w][i].isEmpty {
                    for e in 0..<total { inputs[w][e] += errors[w][i][e] }
                }
            }
            // Q: warm start, or drawn from the shared generator keyed by (seed, step, tensor).
            if !options.warmStart || q[i].isEmpty {
                var fresh = [Float](repeating: 0, count: m * r)
                fresh.withUnsafeMutableBufferPointer {
                    Philox(seed: options.seed, stream: Philox.stream(UInt64(steps), UInt64(i))).fillNormal($0)
                }
                q[i] = fresh
            }
            // k power steps: P = Σ_w M_w Q, P̂ = orthonormalize(P), Q_w = M_wᵀ P̂, Q = Q̄ = mean_w Q_w.
            var start = q[i].map { Double($0) }
            var pHat: [Double] = [], localQ: [[Double]] = [], meanQ: [Double] = []
            for _ in 0..<options.powerIterations {
                var p = [Double](repeating: 0, count: n * r)
                for w in 0..<workers {
                    for row in 0..<n { for k in 0..<r {
                        var s = 0.0
                        for c in 0..<m { s += Double(inputs[w][row * m + c]) * start[c * r + k] }
                        p[row * r + k] += s
                    } }
                }
                pHat = Self.gramSchmidt(p, rows: n, columns: r)
                localQ = (0..<workers).map { w -> [Double] in
                    var qw = [Double](repeating: 0, count: m * r)
                    for c in 0..<m { for k in 0..<r {
                        var s = 0.0
                        for row in 0..<n { s += Double(inputs[w][row * m + c]) * pHat[row * r + k] }
                        qw[c * r + k] = s
                    } }
                    return qw
                }
                meanQ = [Double](repeating: 0, count: m * r)
                for w in 0..<workers { for j in 0..<(m * r) { meanQ[j] += localQ[w][j] / Double(workers) } }
                start = meanQ
            }
            // Output P̂ Q̄ᵀ; E_w = M_w − P̂ Q_cᵀ (Q_c = Q_w for the local variant, Q̄ for the global one).
            for row in 0..<n { for c in 0..<m {
                var s = 0.0
                for k in 0..<r { s += pHat[row * r + k] * meanQ[c * r + k] }
                output[i].scalars[row * m + c] = Float(s)
            } }
            if options.errorFeedback != .off {
                for w in 0..<workers {
                    let qc = options.errorFeedback == .local ? localQ[w] : meanQ
                    var e = inputs[w]
                    for row in 0..<n { for c in 0..<m {
                        var s = 0.0
                        for k in 0..<r { s += pHat[row * r + k] * qc[c * r + k] }
                        e[row * m + c] = Float(Double(e[row * m + c]) - s)
                    } }
                    errors[w][i] = e
                }
            }
            q[i] = meanQ.map { Float($0) }
        }
        return output
    }

    /// Classical Gram–Schmidt on the columns of a row-major rows×columns matrix; a column that
    /// is (numerically) dependent on the earlier ones becomes zero.
    static func gramSchmidt(_ a: [Double], rows: Int, columns: Int) -> [Double] {
        var result = a
        for k in 0..<columns {
            for j in 0..<k {
                var dot = 0.0
                for i in 0..<rows { dot += result[i * columns + j] * a[i * columns + k] }
                for i in 0..<rows { result[i * columns + k] -= dot * result[i * columns + j] }
            }
            var norm = 0.0, original = 0.0
            for i in 0..<rows { norm += result[i * columns + k] * result[i * columns + k]; original += a[i * columns + k] * a[i * columns + k] }
            norm = norm.squareRoot()
            let keep = norm > Double(Orthonormalization.dependenceTolerance) * original.squareRoot() && norm > 0
            for i in 0..<rows { result[i * columns + k] = keep ? result[i * columns + k] / norm : 0 }
        }
        return result
    }
}
