import Collectives
import Foundation
import GradientCompression
import LinearAlgebra

/// Measures, on sampled steps of an in-process PowerSGD run, how far each compressed layer's
/// basis P̂ is from the best one: the top-r left singular vectors U_r of the averaged
/// error-corrected input M̄ = (1/W) Σ_w M_w, the matrix PowerSGD approximates by P̂P̂ᵀM̄.
///
/// Every worker's reducer (`SubspaceProbedPowerSGD`) hands its M_w to the probe through
/// PowerSGD's `PowerStepObserver`; rank 0 hands P̂ (the same on every worker) after the last power
/// iteration. By then every worker's M_w of that step is in, since P̂ needs the all-reduce of
/// P, which waits for every worker's first pass; so rank 0 measures on its own thread, while the
/// other workers wait for it at the step's next collective. The measurement (an SVD per layer)
/// is outside the reducer's byte count and only on every `period`-th step.
public final class SubspaceProbe: @unchecked Sendable {
    /// One layer at one step.
    public struct Measurement: Sendable, Equatable {
        public var step: Int
        /// The gradient tensor's index and shape (its matrix is rows × columns).
        public var tensor: Int
        public var shape: [Int]
        public var rank: Int
        /// θ_max between span P̂ and span U_r, radians.
        public var largestAngle: Double
        /// ‖M̄‖², ‖M̄ − P̂P̂ᵀM̄‖² (PowerSGD's residual) and ‖M̄ − M̄_r‖² = Σ_{i>r} σᵢ² (the optimum).
        public var inputSquare: Double
        public var powerResidualSquare: Double
        public var optimalResidualSquare: Double
        /// σ_{r+1}/σ_r of M̄ (0 when M̄ has rank ≤ r): near 1 the top-r subspace is barely
        /// defined, so a wide angle there costs little approximation error.
        public var spectralGapRatio: Double

        public var powerRelativeError: Double { inputSquare > 0 ? (powerResidualSquare / inputSquare).squareRoot() : 0 }
        public var optimalRelativeError: Double { inputSquare > 0 ? (optimalResidualSquare / inputSquare).squareRoot() : 0 }
    }

    public let workers: Int
    /// Steps between measurements (1: every step).
    public let period: Int
    private let lock = NSLock()
    /// The sum of the workers' inputs of the step being measured, per tensor index.
    private var sums: [Int: [Float]] = [:]
    private var sumStep = -1
    private var recorded: [Measurement] = []
    private var failure: Error?

    public init(workers: Int, period: Int) {
        precondition(workers >= 1 && period >= 1)
        self.workers = workers
        self.period = period
    }

    /// Every measurement so far, in step and then tensor order; throws the first failure of a
    /// measurement (an SVD that did not converge).
    public func measurements() throws -> [Measurement] {
        lock.lock(); defer { lock.unlock() }
        if let failure { throw failure }
        return recorded
    }

    func add(input: UnsafeBufferPointer<Float>, tensor: Int, step: Int) {
        lock.lock(); defer { lock.unlock() }
        if step != sumStep { sums = [:]; sumStep = step }
        var sum = sums[tensor] ?? [Float](repeating: 0, count: input.count)
        for i in 0..<input.count { sum[i] += input[i] }
        sums[tensor] = sum
    }

    func measure(basis: UnsafeBufferPointer<Float>, entry: MatrixLayout.Entry, tensor: Int, step: Int) {
        lock.lock()
        let sum = step == sumStep ? sums.removeValue(forKey: tensor) : nil
        lock.unlock()
        guard let sum else { return }
        do {
            let measurement = try Self.measure(mean: sum.map { $0 / Float(workers) }, basis: Array(basis), entry: entry,
                                               tensor: tensor, step: step)
            lock.lock(); recorded.append(measurement); lock.unlock()
        } catch {
            lock.lock(); if failure == nil { failure = error }; lock.unlock()
        }
    }

    /// The angle and the two residuals for the averaged input `mean` (n×m) and P̂ (n×r).
    static func measure(mean: [Float], basis: [Float], entry: MatrixLayout.Entry, tensor: Int, step: Int) throws -> Measurement {
        let (n, m, r) = (entry.rows, entry.columns, entry.rank)
        let svd = try SingularValueDecomposition(Tensor(shape: [n, m], scalars: mean))
        let k = svd.singularValues.count
        let top = (0 ..< n * r).map { i in i % r < k ? svd.u.scalars[(i / r) * k + i % r] : 0 }
        let inputSquare = mean.reduce(0.0) { $0 + Double($1) * Double($1) }
        // ‖M̄ − P̂P̂ᵀM̄‖² = ‖M̄‖² − ‖P̂ᵀM̄‖² for orthonormal (or zero) columns of P̂.
        var projected = [Float](repeating: 0, count: m * r)
        mean.withUnsafeBufferPointer { a in basis.withUnsafeBufferPointer { p in projected.withUnsafeMutableBufferPointer { q in
            TallSkinny.multiplyTransposed(a.baseAddress!, rows: n, columns: m, by: p.baseAddress!, rank: r, into: q.baseAddress!)
        } } }
        let kept = projected.reduce(0.0) { $0 + Double($1) * Double($1) }
        let optimal = svd.singularValues.dropFirst(r).reduce(0.0) { $0 + Double($1) * Double($1) }
        return Measurement(step: step, tensor: tensor, shape: entry.shape, rank: r,
                           largestAngle: try PrincipalAngles.largest(basis, top, rows: n, rank: r),
                           inputSquare: inputSquare, powerResidualSquare: max(0, inputSquare - kept),
                           optimalResidualSquare: optimal,
                           spectralGapRatio: r < k && svd.singularValues[r - 1] > 0 ? Double(svd.singularValues[r] / svd.singularValues[r - 1]) : 0)
    }

    /// PowerSGD's observer on one worker for one sampled step.
    struct Observer: PowerStepObserver {
        let probe: SubspaceProbe
        let rank: Int
        let step: Int

        func observe(input: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout) {
            probe.add(input: input, tensor: tensorIndex(entry, layout), step: step)
        }

        func observe(basis: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout) {
            guard rank == 0 else { return }
            probe.measure(basis: basis, entry: entry, tensor: tensorIndex(entry, layout), step: step)
        }

        /// Entries are told apart by their offset into the packed error memory, unique per compressed tensor.
        func tensorIndex(_ entry: MatrixLayout.Entry, _ layout: MatrixLayout) -> Int {
            layout.compressedEntries.first { $0.entry.errorOffset == entry.errorOffset }!.index
        }
    }
}

/// PowerSGD whose every `probe.period`-th step is shown to `probe`; otherwise PowerSGD itself
/// (same name, bytes, outputs and state).
public struct SubspaceProbedPowerSGD: GradientReducer {
    var powerSGD: PowerSGD
    public let probe: SubspaceProbe
    /// Calls to `reduce` so far: the step the probe sees. Not part of the saved state, so a
    /// restored reducer counts its sampled steps from 0 again (the studies do not checkpoint).
    var calls = 0

    public init(_ options: PowerSGD.Options, probe: SubspaceProbe) throws {
        powerSGD = try PowerSGD(options)
        self.probe = probe
    }

    public var name: String { powerSGD.name }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        defer { calls += 1 }
        guard calls % probe.period == 0 else { return try powerSGD.reduce(&gradients, over: group) }
        var observer = SubspaceProbe.Observer(probe: probe, rank: group.rank, step: calls)
        return try powerSGD.reduce(&gradients, over: group, observer: &observer)
    }

    public func saveState(to archive: inout StateWriter) { powerSGD.saveState(to: &archive) }
    public mutating func restoreState(from archive: inout StateReader) throws { try powerSGD.restoreState(from: &archive) }
}
