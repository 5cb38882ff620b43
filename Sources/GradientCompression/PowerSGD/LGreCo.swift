import Collectives
import LinearAlgebra

/// L-GreCo (Alimohammadi, Markov, Frantar, Alistarh, MLSys 2024; ALGORITHMS.md §7): PowerSGD
/// with a per-tensor rank, re-planned every `period` compressed steps so that the total message
/// is as small as possible while the total compression error stays within that of the uniform
/// base rank r₀.
///
/// Every compressed step t (counted from `startIteration`):
/// 1. if t > 0 and t mod K = 0 (K = `period`): **re-plan**. Rank 0 measures, for every
///    tensor PowerSGD compresses at r₀ and every candidate rank r ∈ [`minimumRank`,
///    `maximumRank`] (default ⌊r₀/2⌋ … 2r₀) that still passes the compression test, the exact
///    rank-r error of its accumulated input A, err(l, r) = sqrt(Σ_{i>r} σᵢ(A)²) (the
///    reference's 'SVD' error method; σ² from the eigenvalues of the k×k Gram matrix, see
///    `LGreCoPlanner.singularValues`); runs `LGreCoPlanner.plan` with the budget
///    Σ_l err(l, r₀); and **broadcasts** the ranks to every worker (one byte message, the
///    only extra collective). Every worker adopts them (`PowerSGD.adopt(ranks:)`): unchanged
///    ranks keep their warm-start Q, changed ones get a fresh Q from the shared generator
///    keyed by (seed, step, tensor), identical on every worker; error memories carry over.
/// 2. if t mod K ≥ K − a (a = `accumulationSteps`, default 10, as `acc_iter`): rank 0 adds
///    M/a to A, M being its error-corrected input of the step (the reference's rank-0 local
///    profiling; its δ scale cancels in the plan); A is zeroed after each re-plan.
/// 3. a PowerSGD step with the current ranks.
///
/// If rank 0 cannot measure (LAPACK failure), every worker receives the failure in the
/// broadcast and throws the same error; a tensor whose accumulated input is not finite gets
/// infinite errors, which makes the planner keep the uniform plan.
public struct LGreCo: GradientReducer {
    public struct Options: Sendable, Equatable {
        /// PowerSGD's options; `rank` is the base rank r₀ whose error is the budget.
        public var powerSGD: PowerSGD.Options
        /// Compressed steps between re-plans (K, default 100; the reference re-plans once per
        /// epoch on CIFAR and every 4000 steps on the transformer). Each re-plan costs rank 0 a
        /// Gram product and a k×k SVD per tensor, and a broadcast of 1 + 4·tensors bytes.
        public var period: Int
        /// Steps accumulated before each re-plan (a, default 10, `acc_iter`).
        public var accumulationSteps: Int
        /// The candidate ranks (default ⌊r₀/2⌋ (at least 1) … 2r₀).
        public var minimumRank: Int
        public var maximumRank: Int

        public init(powerSGD: PowerSGD.Options = PowerSGD.Options(), period: Int = 100, accumulationSteps: Int = 10,
                    minimumRank: Int? = nil, maximumRank: Int? = nil) {
            self.powerSGD = powerSGD
            self.period = period
            self.accumulationSteps = accumulationSteps
            self.minimumRank = minimumRank ?? max(1, powerSGD.rank / 2)
            self.maximumRank = maximumRank ?? 2 * powerSGD.rank
        }

        /// Throws `invalidOption` naming the option and its domain.
        public func validate() throws {
            try powerSGD.validate()
            guard period >= 1 else { throw GradientCompressionError.invalidOption("lgreco period must be at least 1 (got \(period))") }
            guard accumulationSteps >= 1 else {
                throw GradientCompressionError.invalidOption("lgreco accumulate must be at least 1 (got \(accumulationSteps))")
            }
            guard 1 <= minimumRank, minimumRank <= powerSGD.rank, powerSGD.rank <= maximumRank else {
                throw GradientCompressionError.invalidOption(
                    "lgreco needs 1 ≤ min-rank ≤ rank ≤ max-rank (got \(minimumRank), \(powerSGD.rank), \(maximumRank))")
            }
        }
    }

    public let options: Options
    /// The PowerSGD doing the steps, with the current plan as its per-tensor ranks.
    var powerSGD: PowerSGD
    /// Re-plans made so far.
    public private(set) var plansMade = 0
    /// Rank 0's candidates (rank, size, measured error) per planned tensor at the last re-plan,
    /// and the tensor indices they belong to (empty on other ranks).
    public private(set) var lastMeasurement: [(tensor: Int, candidates: [LGreCoPlanner.Candidate])] = []
    /// Rank 0's accumulated inputs A, fed by the PowerSGD steps of the accumulation window.
    var accumulator = InputAccumulator()

    /// Step 2 of the type's documentation, as PowerSGD's step observer: while `weight` is set,
    /// A += weight · M for every compressed tensor (A packed like the error memories, by
    /// `errorOffset`).
    struct InputAccumulator: PowerStepObserver {
        var weight: Float?
        var sum: [Float] = []

        mutating func observe(input: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout) {
            guard let weight else { return }
            if sum.count != layout.compressedCount { sum = [Float](repeating: 0, count: layout.compressedCount) }
            sum.withUnsafeMutableBufferPointer { a in
                Vector.axpy(weight, input, UnsafeMutableBufferPointer(rebasing: a[entry.errorOffset ..< entry.errorOffset + entry.count]))
            }
        }
    }

    public init(_ options: Options = Options()) throws {
        try options.validate()
        self.options = options
        self.powerSGD = try PowerSGD(options.powerSGD)
    }

    /// `lgreco(rank=2,period=100,...)`: the options that differ from the catalog's defaults.
    public var name: String {
        var parts: [(key: String, value: String)] = [("rank", "\(options.powerSGD.rank)"), ("period", "\(options.period)")]
        let base = options.powerSGD.rank
        if options.minimumRank != max(1, base / 2) || options.maximumRank != 2 * base {
            parts += [("min-rank", "\(options.minimumRank)"), ("max-rank", "\(options.maximumRank)")]
        }
        if options.accumulationSteps != 10 { parts.append(("accumulate", "\(options.accumulationSteps)")) }
        parts += options.powerSGD.nameOptions.dropFirst()
        return ReducerSpecification.reducerName("lgreco", parts)
    }

    /// The current per-tensor effective ranks (0: not compressed); nil before the first call.
    public var ranks: [Int]? { powerSGD.layout?.entries.map(\.rank) }

    /// The layout of the current plan (for tests and reports).
    public var layout: MatrixLayout? { powerSGD.layout }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        let t = powerSGD.step - options.powerSGD.startIteration
        let k = options.period
        if t > 0, t % k == 0 { try replan(over: group) }
        let window = min(options.accumulationSteps, k)
        accumulator.weight = (t >= 0 && group.rank == 0 && t % k >= k - window) ? 1 / Float(window) : nil
        let inner = try powerSGD.reduce(&gradients, over: group, observer: &accumulator)
        return meter.finish(uncompressedBytes: inner.uncompressedBytes, relativeError: inner.relativeError)
    }

    /// The tensors L-GreCo plans (those compressed at the base rank) and each one's candidate
    /// ranks: in [min, max], at most min(n, m), passing `(n+m)·r·rate < n·m`, and always the
    /// effective base rank (which passes by definition), ascending.
    func candidateRanks(shapes: [[Int]]) -> [(tensor: Int, ranks: [Int], base: Int)] {
        let base = MatrixLayout(shapes: shapes, ranks: [options.powerSGD.rank], minCompressionRate: options.powerSGD.minCompressionRate)
        let rate = options.powerSGD.minCompressionRate
        return base.entries.enumerated().compactMap { index, entry in
            guard entry.isCompressed else { return nil }
            let (n, m) = (entry.rows, entry.columns)
            var ranks = (options.minimumRank...options.maximumRank).filter {
                $0 <= min(n, m) && Double((n + m) * $0) * rate < Double(n * m)
            }
            if !ranks.contains(entry.rank) { ranks.append(entry.rank); ranks.sort() }
            return (index, ranks, entry.rank)
        }
    }

    /// Step 1 of the type's documentation: rank 0 measures and plans, everyone adopts.
    mutating func replan(over group: any Communicator) throws {
        guard let layout = powerSGD.layout else { return }
        let planned = candidateRanks(shapes: layout.shapes)
        var message: [UInt8] = []
        if group.rank == 0 {
            do {
                let ranks = try measureAndPlan(layout: layout, planned: planned)
                message = [0]
                for r in ranks { message.appendLittleEndian(UInt32(r)) }
            } catch {
                message = [1] + Array("rank 0 could not measure L-GreCo's errors: \(error)".utf8)
            }
        }
        let received = try group.broadcast(message, root: 0)
        let ranks = try decodePlan(received, tensors: layout.entries.count, planned: planned)
        powerSGD.adopt(ranks: ranks)
        accumulator.sum = []
        plansMade += 1
    }

    /// Rank 0: candidate errors from A's singular values, then the knapsack; per-tensor ranks
    /// (the base rank for tensors that are not planned).
    mutating func measureAndPlan(layout: MatrixLayout, planned: [(tensor: Int, ranks: [Int], base: Int)]) throws -> [Int] {
        let accumulator = self.accumulator.sum
        var layers: [[LGreCoPlanner.Candidate]] = [], uniform: [Int] = []
        for (tensor, ranks, base) in planned {
            let entry = layout.entries[tensor]
            let (n, m) = (entry.rows, entry.columns)
            var sigma: [Float]?
            if accumulator.count == layout.compressedCount {
                let block = accumulator[entry.errorOffset ..< entry.errorOffset + entry.count]
                if block.allSatisfy({ $0.isFinite }) {
                    sigma = try? block.withUnsafeBufferPointer { try LGreCoPlanner.singularValues(of: $0.baseAddress!, rows: n, columns: m) }
                }
            }
            if let sigma, sigma.allSatisfy({ $0.isFinite }) {
                layers.append(LGreCoPlanner.candidates(rows: n, columns: m, singularValues: sigma, ranks: ranks))
            } else {
                layers.append(ranks.map { LGreCoPlanner.Candidate(rank: $0, size: $0 * (n + m), error: .infinity) })
            }
            uniform.append(ranks.firstIndex(of: base)!)
        }
        let choice = LGreCoPlanner.plan(layers, uniform: uniform)
        lastMeasurement = zip(planned, layers).map { ($0.tensor, $1) }
        var ranks = [Int](repeating: options.powerSGD.rank, count: layout.entries.count)
        for (l, (tensor, _, _)) in planned.enumerated() { ranks[tensor] = layers[l][choice[l]].rank }
        return ranks
    }

    /// Checks rank 0's message: status byte, then one little-endian UInt32 rank per tensor,
    /// each planned tensor's rank among its candidates.
    func decodePlan(_ bytes: [UInt8], tensors: Int, planned: [(tensor: Int, ranks: [Int], base: Int)]) throws -> [Int] {
        guard let status = bytes.first else { throw GradientCompressionError.corruptMessage("empty L-GreCo plan from rank 0") }
        if status == 1 { throw GradientCompressionError.corruptMessage(String(decoding: bytes.dropFirst(), as: UTF8.self)) }
        guard status == 0, bytes.count == 1 + 4 * tensors else {
            throw GradientCompressionError.corruptMessage("L-GreCo plan of \(bytes.count) bytes, expected \(1 + 4 * tensors)")
        }
        var ranks = (0..<tensors).map { i in
            (0..<4).reduce(0) { $0 | Int(bytes[1 + 4 * i + $1]) << (8 * $1) }
        }
        let plannedSet = Set(planned.map(\.tensor))
        for (tensor, candidates, _) in planned where !candidates.contains(ranks[tensor]) {
            throw GradientCompressionError.corruptMessage("L-GreCo plan gives tensor \(tensor) rank \(ranks[tensor]), not among \(candidates)")
        }
        for i in 0..<tensors where !plannedSet.contains(i) { ranks[i] = options.powerSGD.rank }
        return ranks
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("lgreco")
        archive.write(name)
        archive.write(plansMade)
        archive.write(powerSGD.requestedRanks?.count ?? -1)
        for r in powerSGD.requestedRanks ?? [] { archive.write(r) }
        archive.write(accumulator.sum)
        powerSGD.saveState(to: &archive)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("lgreco")
        try archive.expect(name)
        let plansMade = try archive.readInt()
        let count = try archive.readInt()
        guard (-1...1_000_000).contains(count) else {
            throw StateArchiveError.unexpectedValue(expected: "an L-GreCo plan length", offset: archive.offset)
        }
        let ranks: [Int]? = count < 0 ? nil : try (0..<count).map { _ in try archive.readInt() }
        let accumulator = try archive.readFloats()
        var restored = try PowerSGD(options.powerSGD)
        restored.requestedRanks = ranks
        try restored.restoreState(from: &archive)
        if let ranks, ranks.count != restored.layout?.entries.count {
            throw StateArchiveError.unexpectedValue(expected: "an L-GreCo plan with one rank per saved tensor", offset: archive.offset)
        }
        guard accumulator.isEmpty || accumulator.count == restored.layout?.compressedCount else {
            throw StateArchiveError.unexpectedValue(expected: "an L-GreCo accumulator matching the saved shapes", offset: archive.offset)
        }
        self.accumulator = InputAccumulator(sum: accumulator)
        self.powerSGD = restored
        self.plansMade = plansMade
        self.lastMeasurement = []
    }
}

extension LGreCo {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "lgreco",
        summary: "L-GreCo: PowerSGD with per-tensor ranks re-planned every `period` steps by a knapsack within the base rank's error",
        options: PowerSGD.Options.declared + [
            ReducerOption("period", .integer(1...Int.max), default: "100"),
            ReducerOption("accumulate", .integer(1...Int.max), default: "10"),
            ReducerOption("min-rank", .integer(1...4096), default: "max(1, rank/2)"),
            ReducerOption("max-rank", .integer(1...8192), default: "2·rank"),
        ]) { o, seed in
        let base = try PowerSGD.Options(reading: o, defaultSeed: seed)
        return try LGreCo(Options(powerSGD: base, period: try o.int("period"), accumulationSteps: try o.int("accumulate"),
                                  minimumRank: try o.int("min-rank", default: max(1, base.rank / 2)),
                                  maximumRank: try o.int("max-rank", default: 2 * base.rank)))
    }
}
