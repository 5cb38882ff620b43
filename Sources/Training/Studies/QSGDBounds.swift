import Foundation
import GradientCompression
import LinearAlgebra

/// QSGD's sparsity and variance bounds (Alistarh et al. 2017, Lemma 3.1) held against the
/// quantizer the project ships, on vectors of several distributions.
///
/// For one bucket v ∈ ℝⁿ quantized to s levels against the scale ‖v‖ (‖v‖₂, or ‖v‖_∞ for the
/// max-norm variant), element i has xᵢ = s|vᵢ|/‖v‖ and level ⌊xᵢ⌋ + Bernoulli(xᵢ − ⌊xᵢ⌋). Both
/// expectations the lemma bounds then have closed forms, which the study computes next to the
/// Monte-Carlo measurement of the real encoder and decoder:
///
/// - non-zeros: an element is non-zero surely when xᵢ ≥ 1 and with probability xᵢ otherwise,
///   so E‖Q(v)‖₀ = Σᵢ min(1, xᵢ). The lemma's bound s(s + √n) (= s² + s√n: the reviewer's
///   "s² + √n·s" is the same expression) follows from it: at most s² elements have xᵢ ≥ 1
///   under the L2 scale (Σ xᵢ² = s²), and Σ xᵢ over the rest is at most s√n (Cauchy–Schwarz).
/// - variance: the level's variance is pᵢ(1 − pᵢ) with pᵢ = xᵢ − ⌊xᵢ⌋, so
///   E‖Q(v) − v‖² = (‖v‖/s)² Σᵢ pᵢ(1 − pᵢ). The L2 bound is min(n/s², √n/s)·‖v‖₂². For the
///   max-norm scale pᵢ(1 − pᵢ) ≤ ¼ gives n‖v‖_∞²/(4s²): never worse than n/(4s²)·‖v‖₂², four
///   times the L2 variance bound's first term, but without a sparsity guarantee below n
///   (a vector of equal magnitudes has xᵢ = s for every element).
///
/// The measurement validates the implementation (measured means within a few standard errors
/// of the closed forms) and shows how tight each bound is per distribution.
public struct QSGDBoundsStudy: Sendable {
    /// How the test vectors are drawn.
    public enum Distribution: String, Sendable, CaseIterable, Codable {
        /// Independent standard normal elements: the typical dense gradient.
        case gaussian
        /// Every element ±1: equal magnitudes, where the L2 sparsity bound is nearly tight at s = 1.
        case equalMagnitude = "equal-magnitude"
        /// 1 % of the elements standard normal, the rest zero: a sparse gradient.
        case sparse
        /// One element 100, the rest standard normal scaled by 0.01: a single dominant coordinate.
        case spike
        /// Student's t with 2 degrees of freedom: heavy tails, as late-training gradients have.
        case heavyTailed = "heavy-tailed"
    }

    /// One (distribution, n, s, scale) cell.
    public struct Row: Sendable, Codable, Equatable {
        public var distribution: String
        public var dimension: Int
        public var levels: Int
        public var scaling: String
        public var trials: Int
        /// Σ min(1, xᵢ).
        public var expectedNonzeros: Double
        public var measuredNonzeros: Double
        public var nonzerosStandardError: Double
        /// s(s + √n) for the L2 scale (the lemma's; n bounds it trivially too); n for the max scale (no better bound).
        public var nonzerosBound: Double
        /// E‖Q(v) − v‖² / ‖v‖₂², closed form.
        public var expectedRelativeVariance: Double
        public var measuredRelativeVariance: Double
        public var varianceStandardError: Double
        /// min(n/s², √n/s) for the L2 scale, n‖v‖_∞²/(4s²‖v‖₂²) for the max scale.
        public var varianceBound: Double
    }

    public var distributions: [Distribution]
    public var dimensions: [Int]
    public var levels: [Int]
    public var scalings: [QSGD.Scaling]
    public var trials: Int
    public var seed: UInt64

    public init(distributions: [Distribution] = Distribution.allCases, dimensions: [Int] = [256, 4_096, 65_536],
                levels: [Int] = [1, 2, 4, 8, 16, 64, 256], scalings: [QSGD.Scaling] = [.l2, .max],
                trials: Int = 200, seed: UInt64 = 0) {
        self.distributions = distributions
        self.dimensions = dimensions
        self.levels = levels
        self.scalings = scalings
        self.trials = trials
        self.seed = seed
    }

    /// The short mode: two sizes, four level counts, 50 trials (a few seconds).
    public static let short = QSGDBoundsStudy(dimensions: [256, 4_096], levels: [1, 4, 16, 64], trials: 50)

    /// The test vector of `distribution` with n elements (deterministic in the seed).
    public func vector(_ distribution: Distribution, dimension n: Int) -> [Float] {
        var generator = Xoshiro256(seed: seed, stream: Philox.stream(0x5153_4744, UInt64(n),
                                                                     UInt64(Distribution.allCases.firstIndex(of: distribution)!)))
        switch distribution {
        case .gaussian:
            return (0..<n).map { _ in generator.nextNormal() }
        case .equalMagnitude:
            return (0..<n).map { _ in generator.next() & 1 == 0 ? 1 : -1 }
        case .sparse:
            return (0..<n).map { _ in
                let keep = generator.nextUniform() < 0.01
                let value = generator.nextNormal()
                return keep ? value : 0
            }
        case .spike:
            var v = (0..<n).map { _ in 0.01 * generator.nextNormal() }
            v[Int(generator.next() % UInt64(n))] = 100
            return v
        case .heavyTailed:
            // t₂ = Z / √(χ²₂/2), and χ²₂ = −2 ln U.
            return (0..<n).map { _ in
                let z = generator.nextNormal()
                let u = max(generator.nextUniform(), .leastNormalMagnitude)
                return z / (-logf(u)).squareRoot()
            }
        }
    }

    /// The closed-form expectations for `v` under `levels` and `scaling` (see the type's documentation).
    public static func expectations(_ v: [Float], levels s: Int, scaling: QSGD.Scaling)
        -> (nonzeros: Double, relativeVariance: Double, nonzerosBound: Double, varianceBound: Double) {
        let n = Double(v.count)
        let l2 = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let maximum = v.reduce(0.0) { max($0, abs(Double($1))) }
        let scale = scaling == .l2 ? l2 : maximum
        let sd = Double(s)
        guard scale > 0 else { return (0, 0, 0, 0) }
        var nonzeros = 0.0, spread = 0.0
        for value in v {
            let x = sd * abs(Double(value)) / scale
            nonzeros += min(1, x)
            let p = x - x.rounded(.down)
            spread += p * (1 - p)
        }
        let variance = (scale / sd) * (scale / sd) * spread / (l2 * l2)
        switch scaling {
        case .l2:
            return (nonzeros, variance, sd * (sd + n.squareRoot()), min(n / (sd * sd), n.squareRoot() / sd))
        case .max:
            return (nonzeros, variance, n, n * maximum * maximum / (4 * sd * sd * l2 * l2))
        }
    }

    /// Measures every cell: `trials` independent encodings (distinct keys) through the fixed-width
    /// format, decoded and compared with v. `progress` is told after each cell.
    public func run(progress: (Row) -> Void = { _ in }) throws -> [Row] {
        var rows: [Row] = []
        for distribution in distributions {
            for n in dimensions {
                let v = vector(distribution, dimension: n)
                let l2Squared = v.reduce(0.0) { $0 + Double($1) * Double($1) }
                for scaling in scalings {
                    for s in levels {
                        // One bucket of the whole vector: the lemma's setting.
                        let qsgd = try QSGD(levels: s, bucketSize: n, scaling: scaling, format: .fixedWidth, seed: seed)
                        var counts: [Double] = [], errors: [Double] = []
                        var decoded = [Float](repeating: 0, count: n)
                        for trial in 0..<trials {
                            let key = CompressionKey(rank: 0, step: trial, tensor: 0)
                            let message = try v.withUnsafeBufferPointer { try qsgd.encode($0, shape: [n], key: key) }
                            for i in decoded.indices { decoded[i] = 0 }
                            try message.withUnsafeBytes { bytes in
                                try decoded.withUnsafeMutableBufferPointer {
                                    try qsgd.decode(bytes, shape: [n], key: key, weight: 1, accumulatingInto: $0)
                                }
                            }
                            var nonzeros = 0, error = 0.0
                            for i in 0..<n {
                                if decoded[i] != 0 { nonzeros += 1 }
                                let d = Double(decoded[i]) - Double(v[i])
                                error += d * d
                            }
                            counts.append(Double(nonzeros))
                            errors.append(error / l2Squared)
                        }
                        let expected = Self.expectations(v, levels: s, scaling: scaling)
                        let row = Row(distribution: distribution.rawValue, dimension: n, levels: s, scaling: scaling.rawValue,
                                      trials: trials, expectedNonzeros: expected.nonzeros, measuredNonzeros: Self.mean(counts),
                                      nonzerosStandardError: Self.standardError(counts), nonzerosBound: expected.nonzerosBound,
                                      expectedRelativeVariance: expected.relativeVariance,
                                      measuredRelativeVariance: Self.mean(errors), varianceStandardError: Self.standardError(errors),
                                      varianceBound: expected.varianceBound)
                        progress(row)
                        rows.append(row)
                    }
                }
            }
        }
        return rows
    }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count) }

    static func standardError(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = mean(x)
        let variance = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
        return (variance / Double(x.count)).squareRoot()
    }

    public static let csvHeader = ["distribution", "n", "s", "scaling", "trials", "expected_nonzeros", "measured_nonzeros",
                                   "nonzeros_se", "nonzeros_bound", "expected_rel_variance", "measured_rel_variance",
                                   "variance_se", "variance_bound"]

    static func cells(_ r: Row) -> [String] {
        [r.distribution, String(r.dimension), String(r.levels), r.scaling, String(r.trials)]
            + [r.expectedNonzeros, r.measuredNonzeros, r.nonzerosStandardError, r.nonzerosBound, r.expectedRelativeVariance,
               r.measuredRelativeVariance, r.varianceStandardError, r.varianceBound].map(TextFormatting.csvNumber)
    }

    public static func csv(_ rows: [Row]) -> String { TextFormatting.csvTable(header: csvHeader, rows: rows.map(cells)) }

    /// The largest deviation of a measured mean from its closed form, in standard errors, over all
    /// cells with a positive standard error: a few units for a correct quantizer.
    public static func largestDeviation(_ rows: [Row]) -> Double {
        rows.reduce(0) { worst, r in
            var d = worst
            if r.nonzerosStandardError > 0 { d = max(d, abs(r.measuredNonzeros - r.expectedNonzeros) / r.nonzerosStandardError) }
            if r.varianceStandardError > 0 {
                d = max(d, abs(r.measuredRelativeVariance - r.expectedRelativeVariance) / r.varianceStandardError)
            }
            return d
        }
    }

    /// The finding in numbers: how close the L2 cells come to their bounds, and what the max-norm
    /// scale trades (variance against non-zeros) at the same s.
    public static func findings(_ rows: [Row]) -> String {
        let l2 = rows.filter { $0.scaling == QSGD.Scaling.l2.rawValue }
        func tightest(_ ratio: (Row) -> Double) -> String {
            guard let r = l2.filter({ ratio($0).isFinite }).max(by: { ratio($0) < ratio($1) }) else { return "–" }
            return "\(TextFormatting.significant(ratio(r))) (\(r.distribution), n = \(r.dimension), s = \(r.levels))"
        }
        var pairs: [(variance: Double, nonzeros: Double)] = []
        for r in l2 {
            guard let m = rows.first(where: { $0.scaling == QSGD.Scaling.max.rawValue && $0.distribution == r.distribution
                                              && $0.dimension == r.dimension && $0.levels == r.levels }),
                  r.measuredRelativeVariance > 0, r.measuredNonzeros > 0 else { continue }
            pairs.append((m.measuredRelativeVariance / r.measuredRelativeVariance, m.measuredNonzeros / r.measuredNonzeros))
        }
        func median(_ x: [Double]) -> String { x.isEmpty ? "–" : TextFormatting.significant(x.sorted()[x.count / 2]) }
        return """
            Under the L2 scale every measured mean stays below its bound; the closest approach is \
            \(tightest { $0.measuredNonzeros / $0.nonzerosBound }) of s(s+√n) for the non-zeros and \
            \(tightest { $0.measuredRelativeVariance / $0.varianceBound }) of min(n/s², √n/s) for the variance: \
            the sparsity bound is nearly attained by vectors of equal magnitudes at s = 1 (E‖Q‖₀ = √n exactly), \
            the variance bound by dense vectors at small s, and both are loose for sparse or spiky vectors. \
            The max-norm scale, over \(pairs.count) matching cells, has a median variance of \(median(pairs.map(\.variance)))× \
            the L2 scale's and a median of \(median(pairs.map(\.nonzeros)))× its non-zeros: its guarantee is a variance \
            bound n‖v‖∞²/(4s²) (never above n‖v‖₂²/(4s²)) with no sparsity guarantee below n.
            """
    }

    /// The report: what the bounds say, how tight they are per distribution, and the charts.
    public static func report(_ rows: [Row]) -> StudyReport {
        var report = StudyReport(title: "QSGD's sparsity and variance bounds, measured")
        report.paragraphs.append("""
            Each cell quantizes one vector of n elements as a single bucket (the lemma's setting) \(rows.first?.trials ?? 0) \
            times with independent randomness, through the shipped encoder and decoder, and compares the mean \
            number of non-zeros and the mean squared error (relative to ‖v‖₂²) with their closed forms \
            Σ min(1, xᵢ) and (‖v‖/s)² Σ pᵢ(1 − pᵢ) and with Lemma 3.1's bounds. Largest deviation of a measured \
            mean from its closed form: \(String(format: "%.1f", largestDeviation(rows))) standard errors.
            """)
        report.paragraphs.append(findings(rows))
        let header = ["distribution", "n", "s", "scale", "E‖Q‖₀ measured", "closed form", "bound", "measured / bound",
                      "E‖Q−v‖²/‖v‖² measured", "closed form", "bound", "measured / bound"]
        let significant = { (x: Double) in TextFormatting.significant(x) }
        report.tables.append(StudyReport.Table(caption: "Every cell", header: header, rows: rows.map { r in
            [r.distribution, String(r.dimension), String(r.levels), r.scaling,
             significant(r.measuredNonzeros), significant(r.expectedNonzeros), significant(r.nonzerosBound),
             r.nonzerosBound > 0 ? significant(r.measuredNonzeros / r.nonzerosBound) : "–",
             significant(r.measuredRelativeVariance), significant(r.expectedRelativeVariance), significant(r.varianceBound),
             r.varianceBound > 0 ? significant(r.measuredRelativeVariance / r.varianceBound) : "–"]
        }))
        for distribution in Set(rows.map(\.distribution)).sorted() {
            guard let n = rows.filter({ $0.distribution == distribution }).map(\.dimension).max() else { continue }
            let cell = rows.filter { $0.distribution == distribution && $0.dimension == n }
            func series(_ name: String, _ scaling: String, _ value: (Row) -> Double, dashed: Bool = false) -> LineChart.Series {
                LineChart.Series(name: name, points: cell.filter { $0.scaling == scaling }.map { (Double($0.levels), value($0)) },
                                 markers: !dashed, dashed: dashed)
            }
            report.charts.append(LineChart(
                title: "Non-zeros, \(distribution), n = \(n)",
                x: .init("levels s", scale: .logarithmic(base: 2)), y: .init("E‖Q(v)‖₀", scale: .logarithmic(base: 10)),
                series: [series("L2 measured", "l2", \.measuredNonzeros), series("L2 bound s(s+√n)", "l2", \.nonzerosBound, dashed: true),
                         series("max measured", "max", \.measuredNonzeros)]))
            report.charts.append(LineChart(
                title: "Relative variance, \(distribution), n = \(n)",
                x: .init("levels s", scale: .logarithmic(base: 2)), y: .init("E‖Q(v)−v‖² / ‖v‖²", scale: .logarithmic(base: 10)),
                series: [series("L2 measured", "l2", \.measuredRelativeVariance),
                         series("L2 bound min(n/s², √n/s)", "l2", \.varianceBound, dashed: true),
                         series("max measured", "max", \.measuredRelativeVariance),
                         series("max bound n‖v‖∞²/(4s²‖v‖²)", "max", \.varianceBound, dashed: true)]))
        }
        return report
    }
}
