import Collectives
import Foundation
import GradientCompression
import LinearAlgebra

/// Study 1 of docs/studies.md (PowerSGD+ abstract: "PowerSGD does not always converge to the
/// optimal solution"): a quadratic on which PowerSGD with error feedback stops at a point that is
/// not stationary while PowerSGD+ and the exact rank-1 SVD reach the optimum.
///
/// The problem: X ∈ ℝ^{8×8}, f(X) = ½‖X‖² + c·x₀₀·x₁₁ (a least-squares problem whose Hessian
/// couples the two diagonal entries; positive definite for |c| < 1, optimum X* = 0), so
/// ∇f = X + c·(x₁₁ at (0,0), x₀₀ at (1,1)). Gradient descent X ← X − γ·C(∇f) with one worker,
/// where C is the reducer (rank 1, error feedback on).
///
/// The start X₀ has x₁₁ = 1, x₀₀ = −c and zeros elsewhere: the gradient's (0,0) entry is exactly
/// 0 there, so the first gradient is a single entry in column 1. PowerSGD's first power step then
/// gives Q̄ = Mᵀ·P̂ = ‖M‖·e₁ exactly, whatever the drawn Q₀ (it needs only Q₀'s second entry ≠ 0).
/// From then on every gradient and error memory is supported on the entries (0,0) and (1,1), so
/// M·Q̄ reads column 1 only, P̂ = e₁, and Q̄ = Mᵀe₁ keeps a zero first entry: the warm start never
/// sees column 0. The model moves along x₁₁ alone, to the minimizer over x₁₁ with x₀₀ fixed
/// (x₁₁ = c²), where ∇f has (0,0) entry c·c² − c ≠ 0; that entry accumulates in the error memory
/// without bound and is never sent. Q̄ stays nonzero (its second entry is the (1,1) entry of M),
/// so PowerSGD's zero-column revival does not fire. The exact SVD sends the larger of the two
/// entries of M every step; PowerSGD+ resets Q to the top right singular vector at each refresh,
/// which picks column 0 once its error has grown.
///
/// The start is measure-zero in two ways: the exact zeros off the two entries, and x₀₀ = −c·x₁₁
/// exactly. `perturbations` measures the second: the start x₀₀ = −c + δ.
public struct PowerSGDCounterexample: Sendable {
    public enum Method: String, Sendable, CaseIterable {
        case powerSGD = "powersgd"
        case powerSGDPlus = "powersgd+"
        case exactSVD = "svd"
    }

    /// One step's state after the update.
    public struct Point: Sendable {
        public var step: Int
        /// ‖X − X*‖ (Frobenius).
        public var distance: Double
        /// ‖∇f(X)‖ (Frobenius): 0 only at the optimum.
        public var gradientNorm: Double
    }

    /// Where gradient descent starts.
    public enum Start: Sendable, Equatable {
        /// x₁₁ = 1, x₀₀ = −c + δ, zeros elsewhere (δ = 0: the counterexample).
        case coupled(perturbation: Double)
        /// The mechanism first suspected, on f(X) = ½‖X‖² (c = 0): X₀ = e₀·vᵀ, a rank-1 gradient
        /// whose right factor v = (q₁, −q₀, 0, …) is orthogonal to PowerSGD's drawn Q₀ in exact
        /// arithmetic, so that P = M·Q₀ = 0 but for rounding.
        case rankOneOrthogonalToQ0

        public var label: String {
            switch self {
            case .coupled(let delta): return delta == 0 ? "coupled" : "coupled, δ = \(String(format: "%.0e", delta))"
            case .rankOneOrthogonalToQ0: return "rank 1, v ⟂ Q₀"
            }
        }
    }

    /// One run of one method from one start.
    public struct Run: Sendable {
        public var method: Method
        public var start: Start
        /// ‖X₀ − X*‖.
        public var initialDistance: Double
        public var points: [Point]
        /// The first step whose distance is below `threshold`, nil if none.
        public func firstStep(below threshold: Double) -> Int? { points.first { $0.distance < threshold }?.step }
    }

    public var steps = 2000
    /// Gradient-descent step size γ.
    public var learningRate: Float = 0.2
    /// The coupling c of the two entries (|c| < 1).
    public var coupling: Float = 0.5
    /// PowerSGD+'s refresh period τ.
    public var period = 20
    /// PowerSGD's seed (Q₀ is drawn from it).
    public var seed: UInt64 = 0
    /// Offsets δ of the start's x₀₀ from −c, run with PowerSGD and the SVD (0 is the exact start).
    public var perturbations: [Double] = [1e-7, 1e-6, 1e-4, 1e-2]
    /// The distance "converged" means in the tables and the end-to-end test.
    public var threshold = 1e-3

    public static let rows = 8, columns = 8

    public init() {}

    /// 300 steps: enough for the SVD and PowerSGD+ to cross the threshold.
    public static var short: PowerSGDCounterexample {
        var study = PowerSGDCounterexample()
        study.steps = 300
        return study
    }

    /// ∇f at X (row-major 8×8) for the coupling c.
    static func gradient(_ x: [Float], coupling: Float) -> [Float] {
        var g = x
        let (a, b) = (0, columns + 1)
        g[a] = x[a] + coupling * x[b]
        g[b] = x[b] + coupling * x[a]
        return g
    }

    /// The start's X₀ and the coupling of its problem.
    func problem(_ start: Start) -> (start: [Float], coupling: Float) {
        var x = [Float](repeating: 0, count: Self.rows * Self.columns)
        switch start {
        case .coupled(let delta):
            x[0] = -coupling + Float(delta)
            x[Self.columns + 1] = 1
            return (x, coupling)
        case .rankOneOrthogonalToQ0:
            // PowerSGD's Q₀ for tensor 0 at step 0 (`PowerSGD.drawQ`, rank 1: one column of m entries).
            var q = [Float](repeating: 0, count: Self.columns)
            q.withUnsafeMutableBufferPointer { Philox(seed: seed, stream: Philox.stream(0, 0)).fillNormal($0) }
            x[0] = q[1]
            x[1] = -q[0]
            return (x, 0)
        }
    }

    static func norm(_ v: [Float]) -> Double { v.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

    func makeReducer(_ method: Method) throws -> any GradientReducer {
        let options = PowerSGD.Options(rank: 1, seed: seed)
        switch method {
        case .powerSGD: return try PowerSGD(options)
        case .powerSGDPlus: return try PowerSGDPlus(options, period: period)
        case .exactSVD: return try ExactSVDReducer(rank: 1)
        }
    }

    /// Gradient descent from `start` with `method`'s compressed gradient.
    public func run(_ method: Method, from start: Start = .coupled(perturbation: 0)) throws -> Run {
        let (steps, learningRate) = (self.steps, self.learningRate)
        let (x0, coupling) = problem(start)
        let points = try InProcessGroup.run(workers: 1) { group -> [Point] in
            var reducer = try makeReducer(method)
            var x = x0
            var points: [Point] = []
            points.reserveCapacity(steps)
            for step in 0..<steps {
                var gradients = [try Tensor(shape: [Self.rows, Self.columns], scalars: Self.gradient(x, coupling: coupling))]
                _ = try reducer.reduce(&gradients, over: group)
                let update = gradients[0].scalars
                for i in x.indices { x[i] -= learningRate * update[i] }
                points.append(Point(step: step + 1, distance: Self.norm(x),
                                    gradientNorm: Self.norm(Self.gradient(x, coupling: coupling))))
            }
            return points
        }[0]
        return Run(method: method, start: start, initialDistance: Self.norm(x0), points: points)
    }

    /// The starts after the counterexample's, each run with PowerSGD and the SVD.
    var otherStarts: [Start] { perturbations.map { .coupled(perturbation: $0) } + [.rankOneOrthogonalToQ0] }

    /// The three methods from the exact start, then PowerSGD and the SVD from each other start.
    public func run() throws -> [Run] {
        var runs = try Method.allCases.map { try run($0) }
        for start in otherStarts {
            for method in [Method.powerSGD, .exactSVD] { runs.append(try run(method, from: start)) }
        }
        return runs
    }

    public static let csvHeader = ["method", "start", "step", "distance", "gradient_norm"]

    public static func csv(_ runs: [Run]) -> String {
        TextFormatting.csvTable(header: csvHeader, rows: runs.flatMap { run in
            run.points.map { [run.method.rawValue, run.start.label, String($0.step),
                              TextFormatting.csvNumber($0.distance), TextFormatting.csvNumber($0.gradientNorm)] }
        })
    }

    public func report(_ runs: [Run]) -> StudyReport {
        let sig = { TextFormatting.significant($0) }
        let number = { (v: Double) in String(format: "%.3g", v) }
        let exactStart = Start.coupled(perturbation: 0)
        let find = { (m: Method, start: Start) in runs.first { $0.method == m && $0.start == start } }
        let first = { (run: Run?) in run?.firstStep(below: self.threshold).map(String.init) ?? "never" }
        var report = StudyReport(title: "A counterexample: PowerSGD stalls, PowerSGD+ and the exact SVD converge")
        report.paragraphs.append("""
            f(X) = ½‖X‖² + c·x₀₀·x₁₁ on 8×8 matrices (c = \(sig(Double(coupling))), optimum X* = 0), gradient descent with \
            step \(sig(Double(learningRate))) for \(steps) steps on one worker, every gradient through a rank-1 reducer with \
            error feedback: PowerSGD (warm start, seed \(seed)), PowerSGD+ (an exact-SVD refresh every \(period) steps) and \
            the exact rank-1 SVD. Start: x₁₁ = 1, x₀₀ = −c, zeros elsewhere, where the gradient's (0,0) entry is exactly 0.
            """)
        let stall = find(.powerSGD, exactStart)?.points.last
        let delays = perturbations.compactMap { delta -> Int? in
            guard let p = find(.powerSGD, .coupled(perturbation: delta))?.firstStep(below: threshold),
                  let s = find(.exactSVD, .coupled(perturbation: delta))?.firstStep(below: threshold) else { return nil }
            return p - s
        }
        let converged = Method.allCases.filter { $0 != .powerSGD }.map { m in
            "\(m.rawValue) \(find(m, exactStart)?.points.last.map { number($0.distance) } ?? "–")"
        }
        report.paragraphs.append("""
            Finding: from this start PowerSGD's first power step sets Q̄ = ‖M‖·e₁ exactly; every later gradient and error \
            memory lives on the entries (0,0) and (1,1), so M·Q̄ never reads column 0 and the model moves along x₁₁ alone. \
            PowerSGD ends at distance \(stall.map { number($0.distance) } ?? "–") with gradient norm \
            \(stall.map { number($0.gradientNorm) } ?? "–"): not a stationary point — the (0,0) entry sits in the error memory, \
            growing every step, never sent. Final distances of the others: \(converged.joined(separator: ", ")). \
            Limits: the start is measure-zero (exact zeros off two entries, and x₀₀ = −c·x₁₁ exactly). Perturbed by δ, \
            PowerSGD crosses \(number(threshold)) \(Self.relative(delays)): \
            the power step multiplies the column-0 share of Q̄ by (|M₀₀|/|M₁₁|)² per step, and M₀₀ grows in the error memory \
            while M₁₁ shrinks, so a nonzero share is recovered at once. The first-suspected mechanism, a rank-1 gradient \
            whose right factor is orthogonal to Q₀, does not stall: \(orthogonalStartSentence(find(.powerSGD, .rankOneOrthogonalToQ0))) \
            PowerSGD crosses at step \(first(find(.powerSGD, .rankOneOrthogonalToQ0))) against the SVD's \(first(find(.exactSVD, .rankOneOrthogonalToQ0))). \
            This is a stall of a constructed start, kept by float zeros, not a failure to expect from a generic start.
            """)
        report.tables.append(StudyReport.Table(
            caption: "Counterexample start: distance ‖X − X*‖ after the steps, and the first step below \(number(threshold))",
            header: ["method", "step 10", "step 100", "final", "final ‖∇f‖", "first step < \(number(threshold))"],
            rows: runs.filter { $0.start == exactStart }.map { run in
                let at = { (s: Int) in run.points.count >= s ? number(run.points[s - 1].distance) : "–" }
                return [run.method.rawValue, at(10), at(100), number(run.points.last?.distance ?? .nan),
                        number(run.points.last?.gradientNorm ?? .nan), first(run)]
            }))
        report.tables.append(StudyReport.Table(
            caption: "Other starts: first step below \(number(threshold)), PowerSGD against the SVD",
            header: ["start", "powersgd", "svd", "powersgd final distance"],
            rows: ([exactStart] + otherStarts).map { start in
                [start.label, first(find(.powerSGD, start)), first(find(.exactSVD, start)),
                 find(.powerSGD, start)?.points.last.map { number($0.distance) } ?? "–"]
            }))
        report.charts.append(LineChart(
            title: "Distance to the optimum against steps, counterexample start (exact zeros are not drawn on the log scale)",
            x: .init("step", fromZero: true), y: .init("‖X − X*‖", scale: .logarithmic(base: 10)),
            series: runs.filter { $0.start == exactStart }.map { run in
                LineChart.Series(name: run.method.rawValue, points: run.points.map { (Double($0.step), $0.distance) })
            }))
        return report
    }

    /// What the first step of the rank-1 orthogonal start did: sent nothing (P = M·Q₀ was exactly
    /// 0, so P̂ and Q̄ were zero and Q̄ was redrawn) or moved (rounding left P nonzero).
    func orthogonalStartSentence(_ run: Run?) -> String {
        guard let run, let step = run.points.first else { return "" }
        return step.distance == run.initialDistance
            ? "P = M·Q₀ came out exactly 0, so nothing was sent at step 1, and Q̄ = Mᵀ·0 = 0 was redrawn from the seed (`PowerSGD.reviveZeroColumns`; the orthonormalization maps a zero column to zero, never NaN);"
            : "rounding left P = M·Q₀ a tiny nonzero vector, whose normalization is the gradient's left factor;"
    }

    /// "1 to 3 steps before the SVD", from PowerSGD's first step below the threshold minus the SVD's.
    static func relative(_ delays: [Int]) -> String {
        guard let low = delays.min(), let high = delays.max() else { return "for none of the perturbations" }
        let range = { (a: Int, b: Int) in a == b ? "\(a) step\(a == 1 ? "" : "s")" : "\(a) to \(b) steps" }
        if high < 0 { return range(-high, -low) + " before the SVD" }
        if low > 0 { return range(low, high) + " after the SVD" }
        return "within \(max(-low, high)) steps of the SVD"
    }
}
