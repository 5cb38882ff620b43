import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression

@Suite struct LGreCoPlannerTests {
    /// On 5 layers × 4 candidate ranks (1024 plans) the DP's plan has the minimal size among
    /// all plans whose total error is within the uniform rank's; it never exceeds that budget.
    @Test(arguments: [UInt64(1), 2, 3])
    func planIsMinimalAmongPlansWithinTheBudget(seed: UInt64) throws {
        let shapes = [(20, 30), (12, 40), (16, 16), (30, 10), (24, 24)]
        let ranks = LGreCoPlanner.candidateRanks(base: 2)
        #expect(ranks == [1, 2, 3, 4])
        var layers: [[LGreCoPlanner.Candidate]] = []
        for (index, (n, m)) in shapes.enumerated() {
            // Spectra that decay at different speeds per layer, so the trade-off is not uniform.
            let decay = 0.4 + 0.12 * Double((index + Int(seed)) % 5)
            let sigma = (0..<min(n, m)).map { Float(pow(decay, Double($0))) }
            let matrix = try LowRankFixtures.matrix(rows: n, columns: m, singularValues: sigma, seed: seed + UInt64(index))
            let s = try SingularValueDecomposition(matrix).singularValues
            layers.append(LGreCoPlanner.candidates(rows: n, columns: m, singularValues: s, ranks: ranks))
        }
        let uniform = [Int](repeating: 1, count: shapes.count)  // index of rank 2
        let budget = layers.reduce(0.0) { $0 + $1[1].error }
        let plan = LGreCoPlanner.plan(layers, uniform: uniform)
        let size = zip(layers, plan).reduce(0) { $0 + $1.0[$1.1].size }
        let error = zip(layers, plan).reduce(0.0) { $0 + $1.0[$1.1].error }
        #expect(error <= budget * (1 + 1e-12))
        // Brute force over all 4⁵ plans.
        var bestSize = Int.max
        for code in 0..<1024 {
            var c = code, s = 0, e = 0.0
            for layer in layers { s += layer[c % 4].size; e += layer[c % 4].error; c /= 4 }
            if e <= budget, s < bestSize { bestSize = s }
        }
        // Rounding errors up to budget/10,000 units can only exclude plans within 5 units of the
        // budget's edge; on these instances the DP finds the brute-force optimum.
        #expect(size == bestSize, "DP \(size) vs brute force \(bestSize)")
        #expect(size <= zip(layers, uniform).reduce(0) { $0 + $1.0[$1.1].size })
    }
}
