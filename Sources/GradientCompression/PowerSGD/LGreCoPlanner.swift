import LinearAlgebra

/// The rank planner of L-GreCo (Alimohammadi et al., MLSys 2024; ALGORITHMS.md §7.1): per
/// layer, choose a rank among candidates so that the total message size is minimal while the
/// total compression error stays within that of the uniform default rank.
///
/// Knapsack by dynamic programming over discretized errors: the budget T = Σ_l err(l, r₀) is
/// cut into `units` (10,000, as in the reference code) and each candidate costs
/// e = ⌈err / (T/units)⌉ units. Rounding up means every plan the DP accepts has
/// Σ err ≤ (T/units)·Σ e ≤ T: the continuous budget holds exactly. The uniform plan is kept
/// as a fallback, so the result is never larger than uniform.
///
/// The reducer that measures the errors and applies the plans is `LGreCo`.
public enum LGreCoPlanner {
    /// One candidate of one layer: its rank, its size (floats sent, r·(n+m)) and its error.
    public struct Candidate: Sendable, Equatable {
        public var rank: Int
        public var size: Int
        public var error: Double
        public init(rank: Int, size: Int, error: Double) { self.rank = rank; self.size = size; self.error = error }
    }

    /// The candidate ranks around base rank r₀: ⌊r₀/2⌋ … 2r₀ (at least 1).
    public static func candidateRanks(base: Int) -> [Int] { Array(max(1, base / 2)...max(1, 2 * base)) }

    /// Candidates of an `n×m` layer from its singular values: error(r) = sqrt(Σ_{i>r} σᵢ²),
    /// the exact rank-r error (L-GreCo's 'SVD' error method).
    public static func candidates(rows n: Int, columns m: Int, singularValues: [Float], ranks: [Int]) -> [Candidate] {
        ranks.map { r in
            let tail = singularValues.dropFirst(min(r, singularValues.count)).reduce(0.0) { $0 + Double($1) * Double($1) }
            return Candidate(rank: r, size: r * (n + m), error: tail.squareRoot())
        }
    }

    /// The singular values (descending) of the `n×m` row-major matrix `a`, as the square roots
    /// of the eigenvalues of its `k×k` Gram matrix (k = min(n, m); A·Aᵀ or Aᵀ·A, one sgemm),
    /// which are its singular values since the Gram matrix is symmetric positive semidefinite.
    /// For ResNet-18's 512×4608 matrices this is a 512×512 SVD instead of a 512×4608 one.
    /// Precision: each σᵢ² carries an absolute error of about k·ε·σ₁² (ε = 2⁻²⁴), so a tail
    /// energy Σ_{i>r} σᵢ² is accurate to ~k²·ε·σ₁² — far below the tails that matter to the
    /// plan (tested against the direct SVD).
    public static func singularValues(of a: UnsafePointer<Float>, rows n: Int, columns m: Int) throws -> [Float] {
        let k = min(n, m)
        guard k > 0 else { return [] }
        var gram = Tensor(shape: [k, k])
        gram.withUnsafeMutableBufferPointer { g in
            if n <= m {
                sgemm(.none, .transposed, m: n, n: n, k: m, a: a, lda: m, b: a, ldb: m, c: g.baseAddress!, ldc: n)
            } else {
                sgemm(.transposed, .none, m: m, n: m, k: n, a: a, lda: m, b: a, ldb: m, c: g.baseAddress!, ldc: m)
            }
        }
        return try SingularValueDecomposition(gram).singularValues.map { max(0, $0).squareRoot() }
    }

    /// The chosen candidate index per layer. `uniform[l]` is the index of the base rank in
    /// layer l's candidates; the budget is Σ_l error of those.
    public static func plan(_ layers: [[Candidate]], uniform: [Int], units: Int = 10_000) -> [Int] {
        precondition(layers.count == uniform.count && units > 0)
        let budget = zip(layers, uniform).reduce(0.0) { $0 + $1.0[$1.1].error }
        let unit = budget / Double(units)
        func cost(_ c: Candidate) -> Int {
            guard c.error.isFinite else { return units + 1 }
            if unit <= 0 || !unit.isFinite { return c.error == 0 ? 0 : units + 1 }
            let e = (c.error / unit).rounded(.up)
            return e > Double(units) ? units + 1 : Int(e)
        }
        let infinity = Int.max / 4
        // best[b]: minimal total size of the layers so far with Σ cost ≤ b.
        var best = [Int](repeating: 0, count: units + 1)
        var choices: [[Int]] = []
        for layer in layers {
            var next = [Int](repeating: infinity, count: units + 1)
            var choice = [Int](repeating: -1, count: units + 1)
            let costs = layer.map(cost)
            for b in 0...units {
                for (index, candidate) in layer.enumerated() where costs[index] <= b {
                    let total = best[b - costs[index]] == infinity ? infinity : best[b - costs[index]] + candidate.size
                    if total < next[b] { next[b] = total; choice[b] = index }
                }
            }
            best = next
            choices.append(choice)
        }
        let uniformSize = zip(layers, uniform).reduce(0) { $0 + $1.0[$1.1].size }
        guard best[units] < infinity, best[units] <= uniformSize else { return uniform }
        // Backtrack from the full budget.
        var plan = [Int](repeating: 0, count: layers.count)
        var b = units
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let index = choices[l][b]
            plan[l] = index
            b -= cost(layers[l][index])
        }
        return plan
    }
}
