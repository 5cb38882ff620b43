import GradientCompression
import LinearAlgebra

/// What an observer of one PowerSGD worker's raw factors knows of that worker's gradient matrix M
/// (n×m): P_w = M·Q (Q drawn from the shared seed) and Q_w = Mᵀ·P̂ (P̂ = orth(Σ_w P_w), known to
/// everyone after the all-reduce). Both are linear in M, so the observer knows the orthogonal
/// projection Π(M) onto the matrices they determine,
///
///     Π(G) = P̂P̂ᵀG + (I − P̂P̂ᵀ)·G·Q̂Q̂ᵀ      (Q̂: an orthonormal basis of span Q),
///
/// and Π(M) = P̂Q_wᵀ + (I − P̂P̂ᵀ)·P_w·R⁻¹Q̂ᵀ with Q = Q̂R. Gradient matching compares Π(g) with
/// Π(M); Π is self-adjoint, so the derivative of the distance with respect to g is Π applied to
/// its derivative with respect to Π(g).
///
/// With one worker this adds nothing to the decoded message D = P̂Q_wᵀ: P_w = D·Q, since M·Q lies
/// in span P̂. With several workers, P̂ is the aggregate's subspace but Q_w is this worker's alone.
public struct LowRankObservation: Sendable {
    public let rows: Int, columns: Int, rank: Int
    /// n×r, orthonormal or zero columns, row-major.
    let pHat: [Float]
    /// m×r, orthonormal columns (zero where Q had no new direction), row-major.
    let qBasis: [Float]

    /// Π(g) for an n×m row-major matrix g.
    public func project(_ g: [Float]) -> [Float] {
        let (n, m, r) = (rows, columns, rank)
        var a = [Float](repeating: 0, count: r * m)          // P̂ᵀg
        multiply(pHat, .transposed, g, .none, m: r, n: m, k: n, into: &a)
        var b = [Float](repeating: 0, count: n * r)          // g·Q̂
        multiply(g, .none, qBasis, .none, m: n, n: r, k: m, into: &b)
        var c = [Float](repeating: 0, count: r * r)          // P̂ᵀgQ̂
        multiply(pHat, .transposed, b, .none, m: r, n: r, k: n, into: &c)
        var residual = b                                      // (I − P̂P̂ᵀ)gQ̂
        var pc = [Float](repeating: 0, count: n * r)
        multiply(pHat, .none, c, .none, m: n, n: r, k: r, into: &pc)
        for i in residual.indices { residual[i] -= pc[i] }
        var out = [Float](repeating: 0, count: n * m)
        multiply(pHat, .none, a, .none, m: n, n: m, k: r, into: &out)
        multiply(residual, .none, qBasis, .transposed, m: n, n: m, k: r, into: &out, accumulate: true)
        return out
    }
}

/// One worker's view of a compressed PowerSGD step, rebuilt from the float all-reduces that
/// worker made (`RecordingCommunicator`): per tensor Π(M_w) and Π for the compressed ones, the
/// worker's own values for the uncompressed ones (biases are all-reduced exactly).
public struct PowerSGDWorkerView {
    public let observed: ObservedGradient
    /// The first layer as an analytic attack can use it: Q_wᵀ (r×m) and P̂ᵀb_w (r) play the
    /// weight and bias gradient of a layer with r units, since Q_wᵀ = Σ_b (P̂ᵀδ_b)·x_bᵀ and
    /// P̂ᵀb_w = Σ_b P̂ᵀδ_b. Nil when the first tensor is not compressed or the second is not 1-D.
    public let firstLayer: (weight: [Float], bias: [Float])?

    /// `records`: worker w's float all-reduces of the reducer's first step, whose last three are
    /// the uncompressed tensors (mean), P (sum) and Q (mean); `layout`: the reducer's.
    init(options: PowerSGD.Options, layout: MatrixLayout, records: [RecordingCommunicator.Record]) throws {
        guard options.startIteration == 0, options.powerIterations == 1 else {
            throw InversionError.invalidSetting("the factor view is built for a plain compressed first step (start-iteration 0, one power iteration)")
        }
        let shapes = layout.shapes
        let steps = records.suffix(3)
        guard steps.count == 3, steps.map(\.contribution.count) == [layout.uncompressedCount, layout.pCount, layout.qCount] else {
            throw InversionError.observation("the worker's all-reduces (\(records.map(\.contribution.count)) floats) are not one PowerSGD step "
                                             + "(\(layout.uncompressedCount), \(layout.pCount), \(layout.qCount))")
        }
        let (uncompressed, p, q) = (steps[steps.startIndex], steps[steps.startIndex + 1], steps[steps.startIndex + 2])
        // P̂ exactly as every worker computes it from the all-reduced P.
        var pHat = p.result
        let orthonormalization = options.orthonormalization ?? .preferred(rank: options.rank)
        try pHat.withUnsafeMutableBufferPointer { buffer in
            for (_, entry) in layout.compressedEntries {
                try orthonormalization.apply(buffer.baseAddress! + entry.pOffset, rows: entry.rows, columns: entry.rank,
                                             epsilon: options.orthogonalizationEpsilon)
            }
        }
        var tensors: [[Float]] = [], projections: [LowRankObservation?] = []
        var firstLayer: (weight: [Float], bias: [Float])? = nil
        for (index, entry) in layout.entries.enumerated() {
            guard entry.isCompressed else {
                tensors.append(Array(uncompressed.contribution[entry.uncompressedOffset..<(entry.uncompressedOffset + entry.count)]))
                projections.append(nil)
                continue
            }
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            let pHatEntry = Array(pHat[entry.pOffset..<(entry.pOffset + n * r)])
            let pWorker = Array(p.contribution[entry.pOffset..<(entry.pOffset + n * r)])
            let qWorker = Array(q.contribution[entry.qOffset..<(entry.qOffset + m * r)])
            // The shared Q of the first step (seed, step 0, tensor index), as the reducer draws it.
            var shared = [Float](repeating: 0, count: m * r)
            shared.withUnsafeMutableBufferPointer { Philox(seed: options.seed, stream: Philox.stream(0, UInt64(index))).fillNormal($0) }
            let (basis, triangle) = Self.gramSchmidt(shared, rows: m, columns: r)
            let projection = LowRankObservation(rows: n, columns: m, rank: r, pHat: pHatEntry, qBasis: basis)
            // Z = P_w·R⁻¹ = M·Q̂ (R upper triangular; a zero diagonal leaves that column of Z zero).
            var z = [Float](repeating: 0, count: n * r)
            for i in 0..<n { for k in 0..<r {
                var v = Double(pWorker[i * r + k])
                for j in 0..<k { v -= Double(z[i * r + j]) * triangle[j * r + k] }
                z[i * r + k] = triangle[k * r + k] > 0 ? Float(v / triangle[k * r + k]) : 0
            } }
            // Π(M) = P̂Q_wᵀ + (Z − P̂·P̂ᵀZ)·Q̂ᵀ.
            var value = [Float](repeating: 0, count: n * m)
            multiply(pHatEntry, .none, qWorker, .transposed, m: n, n: m, k: r, into: &value)
            var pz = [Float](repeating: 0, count: r * r)
            multiply(pHatEntry, .transposed, z, .none, m: r, n: r, k: n, into: &pz)
            var inPlane = [Float](repeating: 0, count: n * r)
            multiply(pHatEntry, .none, pz, .none, m: n, n: r, k: r, into: &inPlane)
            for i in z.indices { z[i] -= inPlane[i] }
            multiply(z, .none, basis, .transposed, m: n, n: m, k: r, into: &value, accumulate: true)
            tensors.append(value)
            projections.append(projection)
            if index == 0, layout.entries.count > 1, !layout.entries[1].isCompressed, shapes[1].count == 1, shapes[1][0] == n {
                let bias = Array(uncompressed.contribution[layout.entries[1].uncompressedOffset..<(layout.entries[1].uncompressedOffset + n)])
                var weight = [Float](repeating: 0, count: r * m)
                for j in 0..<m { for k in 0..<r { weight[k * m + j] = qWorker[j * r + k] } }
                var projectedBias = [Float](repeating: 0, count: r)
                multiply(pHatEntry, .transposed, bias, .none, m: r, n: 1, k: n, into: &projectedBias)
                firstLayer = (weight, projectedBias)
            }
        }
        observed = ObservedGradient(tensors: tensors, projections: projections)
        self.firstLayer = firstLayer
    }

    /// Modified Gram–Schmidt in Double of an m×r row-major matrix: (Q̂, R) with Q = Q̂R.
    static func gramSchmidt(_ a: [Float], rows m: Int, columns r: Int) -> (basis: [Float], triangle: [Double]) {
        var columns = (0..<r).map { k in (0..<m).map { Double(a[$0 * r + k]) } }
        var triangle = [Double](repeating: 0, count: r * r)
        for k in 0..<r {
            for j in 0..<k {
                let d = zip(columns[j], columns[k]).reduce(0) { $0 + $1.0 * $1.1 }
                triangle[j * r + k] = d
                for i in 0..<m { columns[k][i] -= d * columns[j][i] }
            }
            let norm = columns[k].reduce(0) { $0 + $1 * $1 }.squareRoot()
            triangle[k * r + k] = norm
            for i in 0..<m { columns[k][i] = norm > 0 ? columns[k][i] / norm : 0 }
        }
        var basis = [Float](repeating: 0, count: m * r)
        for i in 0..<m { for k in 0..<r { basis[i * r + k] = Float(columns[k][i]) } }
        return (basis, triangle)
    }
}
