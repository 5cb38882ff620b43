import Collectives
import LinearAlgebra

/// PowerSGD (Vogels, Karimireddy, Jaggi, NeurIPS 2019): rank-r compression of every gradient
/// matrix by one warm-started power-iteration step, with error feedback (ALGORITHMS.md §1).
///
/// One compressed step, per matrix M_w = G_w + E_w (n×m) of worker w, in the paper's order:
/// 1. P_w = M_w·Q                         (fused with E ← G + E; Q shared by all workers)
/// 2. P = Σ_w P_w                         (one all-reduce for all matrices; scale irrelevant)
/// 3. P̂ = orthonormalize(P)
/// 4. Q_w = M_wᵀ·P̂
/// 5. Q̄ = (1/W) Σ_w Q_w                   (one all-reduce for all matrices)
/// 6. G ← P̂·Q̄ᵀ = P̂P̂ᵀ M̄, the same on every worker; E ← M_w − P̂·Q_wᵀ, deferred into the
///    next step's first pass (see `powerStep`)
/// 7. keep Q̄ for the next step (warm start)
/// With `powerIterations` k > 1, the power step (P_w = M_w·Q, its sum, steps 3–5) runs k − 1 more
/// times from Q = Q̄ before step 6.
/// Tensors that do not pass the compression test (every 1-D one) are all-reduced exactly, once,
/// in one more packed buffer; their error memory is 0. So a step is 1 + 2k collectives (3 for
/// the paper's k = 1).
///
/// Momentum, weight decay and the learning rate belong to the optimizer, applied after the
/// reduce (Algorithm 2).
///
/// `PowerSGDReference` is the same algorithm written plainly; the tests compare the two.
/// Methods built on PowerSGD attach through two extension points: `PowerStepObserver` sees each
/// power step's inputs and basis (L-GreCo, the subspace study), and `reduce(_:over:compressedStep:)`
/// runs another step in place of a power step (PowerSGD+'s subspace refresh, `PowerSGDPlus`).
public struct PowerSGD: GradientReducer {
    public let options: Options

    /// The layout of the gradient list, built on the first call.
    var layout: MatrixLayout?
    /// Calls to `reduce` so far (plain and compressed).
    var step = 0
    /// Whether `workspace.q` holds a warm-start Q (false until the first compressed step).
    var hasWarmStart = false
    /// Whether the workers' shape lists were compared since this reducer was built or restored.
    var agreementChecked = false
    /// Per-tensor requested ranks (L-GreCo's plan); nil: `options.rank` for every tensor.
    var requestedRanks: [Int]?
    /// Q, the error memories, the pending residual and the step's scratch buffers.
    var workspace = PowerStepWorkspace()
    /// While a step is reduced in buckets: the warm-start and pending-residual flags it began with.
    var bucketStepStart: (hasWarmStart: Bool, hasPendingResidual: Bool)?

    public init(_ options: Options = Options()) throws {
        try options.validate()
        self.options = options
    }

    /// `powersgd(rank=2,...)`: the options that differ from the defaults, in the syntax
    /// `ReducerSpecification` parses.
    public var name: String { ReducerSpecification.reducerName("powersgd", options.nameOptions) }

    /// The layout for this gradient list (for tests and reports: which tensors are compressed).
    public func layout(for shapes: [[Int]]) -> MatrixLayout {
        MatrixLayout(shapes: shapes, ranks: requestedRanks ?? [options.rank], minCompressionRate: options.minCompressionRate,
                     groupSameShapes: options.groupSameShapes)
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        if options.alternate {
            return try reduce(&gradients, over: group) { reducer, gradients, layout, group in
                try reducer.alternatingStep(&gradients, layout: layout, over: group)
            }
        }
        var none = IgnoringObserver()
        return try reduce(&gradients, over: group, observer: &none)
    }

    /// `reduce`, showing `observer` each compressed tensor's error-corrected input M and its
    /// basis P̂ of every power step (L-GreCo accumulates the inputs for its re-plans; the subspace
    /// study measures the basis against the exact SVD).
    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator,
                                observer: inout some PowerStepObserver) throws -> ReductionStats {
        try reduce(&gradients, over: group) { reducer, gradients, layout, group in
            let relativeError = try reducer.powerStep(&gradients, layout: layout, over: group, observer: &observer)
            if reducer.options.warmStart { reducer.reviveZeroColumns(layout: layout) }
            return relativeError
        }
    }

    /// A step that runs where a power step would: it reduces the gradients in place with this
    /// reducer's layout and state and returns the relative error of its approximation.
    typealias CompressedStep = (inout PowerSGD, inout [Tensor], MatrixLayout, any Communicator) throws -> Double

    /// The extension point for methods that replace some of PowerSGD's power steps (PowerSGD+'s
    /// subspace refresh): runs `compressedStep` in place of the power step, with everything else
    /// of a step unchanged — the layout and buffers prepared, plain all-reduce before
    /// `startIteration`, the step counted and the collectives metered.
    mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator,
                         compressedStep: CompressedStep) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        try prepare(gradients, over: group)
        let layout = self.layout!
        defer { step += 1 }
        if step < options.startIteration {
            try allReduceEverything(&gradients, layout: layout, over: group)
            return meter.finish(uncompressedBytes: 4 * layout.totalCount, relativeError: 0)
        }
        let relativeError = try compressedStep(&self, &gradients, layout, group)
        return meter.finish(uncompressedBytes: 4 * layout.totalCount, relativeError: relativeError)
    }

    /// Builds the layout and buffers on the first call (after checking that every worker has
    /// the same shapes), and validates the gradient list against it on every call.
    mutating func prepare(_ gradients: [Tensor], over group: any Communicator) throws {
        if layout == nil { layout = self.layout(for: gradients.map(\.shape)) }
        if !agreementChecked {
            try MatrixLayout.checkAgreement(gradients.map(\.shape), over: group)
            agreementChecked = true
        }
        let layout = self.layout!
        try layout.validate(gradients)
        makeWorkspaceUnique()
        workspace.fitState(to: layout, errorFeedback: options.errorFeedback != .off)
    }

    /// Gives this reducer its own workspace if a copy of it shares the current one.
    mutating func makeWorkspaceUnique() {
        if !isKnownUniquelyReferenced(&workspace) { workspace = workspace.copy() }
    }

    /// Draws Q_i for every compressed tensor from the shared generator, keyed by (seed, step, i).
    mutating func drawQ(layout: MatrixLayout) {
        let q = workspace.q
        for (index, entry) in layout.compressedEntries {
            let part = UnsafeMutableBufferPointer(start: q.base + entry.qOffset, count: entry.columns * entry.rank)
            Philox(seed: options.seed, stream: Philox.stream(UInt64(step), UInt64(index))).fillNormal(part)
        }
        hasWarmStart = true
    }

    /// A zero column of the warm-start Q (a zero gradient — a frozen layer — or a gradient of
    /// rank below r makes P̂ and then Q̄ have zero columns) would stay zero forever, since
    /// M·0 = 0: the approximation would lose that rank for good. Such columns are redrawn from
    /// the shared generator, keyed by (seed, step, tensor, column); Q̄ is identical on every
    /// worker, so every worker redraws the same columns with the same values.
    func reviveZeroColumns(layout: MatrixLayout) {
        for (index, entry) in layout.compressedEntries {
            reviveZeroColumns(of: workspace.q.base + entry.qOffset, rows: entry.columns, rank: entry.rank, tensor: index)
        }
    }

    /// Redraws the zero columns of one factor block (`rows×rank`, row-major) of tensor `tensor`.
    func reviveZeroColumns(of block: UnsafeMutablePointer<Float>, rows m: Int, rank r: Int, tensor index: Int) {
        for k in 0..<r {
            var zero = true
            for j in 0..<m where block[j &* r &+ k] != 0 { zero = false; break }
            guard zero else { continue }
            var column = [Float](repeating: 0, count: m)
            column.withUnsafeMutableBufferPointer {
                Philox(seed: options.seed, stream: Philox.stream(UInt64(step), UInt64(index), UInt64(k) &+ 1)).fillNormal($0)
            }
            for j in 0..<m { block[j &* r &+ k] = column[j] }
        }
    }

    /// Steps 1–7 of the type's documentation. Returns ‖residual‖/‖M‖ over compressed tensors.
    ///
    /// The new error E ← M − P̂·Q_cᵀ (Q_c = Q_w for variant B, Q̄ for A) is **not** written in
    /// step 6: E keeps M, and (P̂, Q_c) are kept as the pending residual correction, subtracted
    /// in the next step's first pass, which reads and writes E anyway (`LowRankKernels.project`).
    /// Step 6 then only writes the output, and a step moves 5 floats per element instead of 7
    /// (see docs/powersgd.md). The residual's norm comes from the factors:
    /// ‖M − P̂Q_cᵀ‖² = ‖M‖² − 2⟨Q_w, Q_c⟩ + ‖Q_c‖², since P̂ has orthonormal (or zero) columns
    /// and P̂ᵀM = Q_wᵀ.
    mutating func powerStep(_ gradients: inout [Tensor], layout: MatrixLayout, over group: any Communicator,
                            observer: inout some PowerStepObserver) throws -> Double {
        if !options.warmStart || !hasWarmStart { drawQ(layout: layout) }
        let feedback = options.errorFeedback
        let orthonormalization = options.orthonormalization ?? .preferred(rank: options.rank)
        let w = workspace
        w.fitStep(to: layout, errorFeedback: feedback != .off)
        let (q, p, localQ, qt, pendingQt) = (w.q, w.p, w.localQ, w.qt, w.pendingQt)
        /// M of a compressed tensor: E after the first pass with error feedback, else G itself.
        func input(_ index: Int, _ entry: MatrixLayout.Entry, _ body: (UnsafePointer<Float>) -> Void) {
            if feedback == .off { gradients[index].withUnsafeBufferPointer { body($0.baseAddress!) } } else { body(w.error.base + entry.errorOffset) }
        }
        var inputSquares = [Double](repeating: 0, count: layout.entries.count)

        // 1. Pack the uncompressed tensors; E ← G + E − P̂'Q_c'ᵀ (last step's pending residual),
        //    so E holds M; P_w = M·Q.
        TensorPlacement.pack(gradients, layout.uncompressedPlacements, into: w.uncompressed.base)
        for (index, entry) in layout.compressedEntries {
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            LowRankKernels.transpose(q.base + entry.qOffset, rows: m, columns: r, into: qt.base)
            var correction: LowRankKernels.Correction?
            if feedback != .off, w.hasPendingResidual {
                LowRankKernels.transpose(w.pendingQ.base + entry.qOffset, rows: m, columns: r, into: pendingQt.base)
                correction = .init(pHat: w.pendingP.base + entry.pOffset, qt: pendingQt.base)
            }
            inputSquares[index] = gradients[index].withUnsafeBufferPointer { g in
                LowRankKernels.project(gradient: g.baseAddress!, error: feedback == .off ? nil : w.error.base + entry.errorOffset,
                                       correction: correction, rows: n, columns: m, qt: qt.base, rank: r,
                                       into: p.base + entry.pOffset)
            }
        }
        for (index, entry) in layout.compressedEntries {
            input(index, entry) { observer.observe(input: UnsafeBufferPointer(start: $0, count: entry.count), of: entry, in: layout) }
        }
        // 2. One all-reduce for the uncompressed tensors (mean), one for all P's (sum).
        try group.allReduce(w.uncompressed.window(layout.uncompressedWindow), operation: .mean)
        try group.allReduce(p.window(layout.pWindow), operation: .sum)
        for iteration in 1...options.powerIterations {
            if iteration > 1 {
                // Another power step from this step's Q̄: P_w = M_w·Q̄, P = Σ_w P_w.
                for (index, entry) in layout.compressedEntries {
                    input(index, entry) {
                        TallSkinny.multiply($0, rows: entry.rows, columns: entry.columns, by: q.base + entry.qOffset,
                                            rank: entry.rank, into: p.base + entry.pOffset)
                    }
                }
                try group.allReduce(p.window(layout.pWindow), operation: .sum)
            }
            // 3.–4. P̂ = orth(P); Q_w = M_wᵀ P̂.
            for (index, entry) in layout.compressedEntries {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                let pHat = p.base + entry.pOffset
                try orthonormalization.apply(pHat, rows: n, columns: r, epsilon: options.orthogonalizationEpsilon)
                input(index, entry) {
                    TallSkinny.multiplyTransposed($0, rows: n, columns: m, by: pHat, rank: r, into: q.base + entry.qOffset)
                }
            }
            // 5. Keep the local Q_w, then Q̄ = mean over workers.
            localQ.update(layout.qWindow, from: q)
            try group.allReduce(q.window(layout.qWindow), operation: .mean)
        }
        for (_, entry) in layout.compressedEntries {
            observer.observe(basis: UnsafeBufferPointer(start: p.base + entry.pOffset, count: entry.rows * entry.rank),
                             of: entry, in: layout)
        }
        // 6. G ← P̂Q̄ᵀ (one write pass); the residual E ← M − P̂Q_cᵀ is left pending. Outputs
        //    beyond the last-level cache in all are written past it (`LowRankKernels.expand`).
        let streaming = 4 * layout.compressedCount > CacheSize.lastLevelBytes
        for (index, entry) in layout.compressedEntries {
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            LowRankKernels.transpose(q.base + entry.qOffset, rows: m, columns: r, into: qt.base)
            gradients[index].withUnsafeMutableBufferPointer { g in
                LowRankKernels.expand(pHat: p.base + entry.pOffset, rank: r, qt: qt.base, rows: n, columns: m,
                                      into: g.baseAddress!, streaming: streaming)
            }
        }
        if feedback != .off {
            w.pendingP.update(layout.pWindow, from: p)
            w.pendingQ.update(layout.qWindow, from: feedback == .local ? localQ : q)
        }
        TensorPlacement.unpack(w.uncompressed.base, layout.uncompressedPlacements, into: &gradients)
        w.hasPendingResidual = feedback != .off
        // 7. Q̄ stays in `q` as the next step's warm start (`reduce` revives its zero columns).
        return relativeResidual(layout: layout, inputSquares: inputSquares)
    }

    /// ‖M − P̂Q_cᵀ‖ / ‖M‖ over the compressed tensors, from the factors (Q_c = Q_w for variant B,
    /// else Q̄): the relative error of the last power step.
    func relativeResidual(layout: MatrixLayout, inputSquares: [Double]) -> Double {
        let (localQ, q) = (workspace.localQ, workspace.q)
        var input = 0.0, residual = 0.0
        for (index, entry) in layout.compressedEntries {
            var local = 0.0, cross = 0.0, mean = 0.0
            for j in entry.qOffset ..< entry.qOffset + entry.columns * entry.rank {
                let a = Double(localQ[j]), b = Double(q[j])
                local += a * a; cross += a * b; mean += b * b
            }
            input += inputSquares[index]
            residual += options.errorFeedback == .local ? max(0, inputSquares[index] - local) : max(0, inputSquares[index] - 2 * cross + mean)
        }
        return input > 0 ? (residual / input).squareRoot() : 0
    }

    /// Applies the pending residual correction (E ← E − P̂Q_cᵀ) so that the error buffer holds
    /// the true error memory: before a re-plan changes the layout and before a PowerSGD+ refresh.
    mutating func settlePendingResidual() {
        guard workspace.hasPendingResidual else { return }
        makeWorkspaceUnique()
        workspace.replaceError(errorMemory)
        workspace.hasPendingResidual = false
    }

    /// The error memory E − P̂Q_cᵀ (packed like the error buffer), with the pending correction applied.
    var errorMemory: [Float] {
        var result = workspace.error.array
        guard workspace.hasPendingResidual, let layout else { return result }
        let (pendingP, pendingQ) = (workspace.pendingP, workspace.pendingQ)
        for entry in layout.entries where entry.isCompressed {
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            for i in 0..<n {
                for j in 0..<m {
                    var correction: Float = 0
                    for k in 0..<r { correction += pendingP[entry.pOffset + i * r + k] * pendingQ[entry.qOffset + j * r + k] }
                    result[entry.errorOffset + i * m + j] -= correction
                }
            }
        }
        return result
    }

    /// Plain fp32 all-reduce (mean) of every tensor, in one packed buffer (before `startIteration`).
    func allReduceEverything(_ gradients: inout [Tensor], layout: MatrixLayout, over group: any Communicator) throws {
        let (placements, count) = TensorPlacement.contiguous(gradients)
        try TensorPlacement.allReduceMean(&gradients, placements, count: count, over: group)
    }

    public func saveState(to archive: inout StateWriter) { saveState(to: &archive, named: name) }

    /// The state under the name of the reducer that owns this PowerSGD (itself, or `PowerSGDPlus`).
    func saveState(to archive: inout StateWriter, named name: String) {
        let w = workspace
        archive.write("powersgd")
        archive.write(name)
        archive.write(step)
        archive.write(hasWarmStart)
        archive.writeShapeList(layout?.shapes)
        archive.write(w.q.array)
        // The alternating step's P-half basis: the last reduced P (the standard step rebuilds P every step).
        if options.alternate { archive.write(hasWarmStart ? w.p.array : []) }
        archive.write(w.error.array)
        archive.write(w.hasPendingResidual)
        archive.write(w.hasPendingResidual ? w.pendingP.array : [])
        archive.write(w.hasPendingResidual ? w.pendingQ.array : [])
    }

    public mutating func restoreState(from archive: inout StateReader) throws { try restoreState(from: &archive, named: name) }

    mutating func restoreState(from archive: inout StateReader, named name: String) throws {
        try archive.expect("powersgd")
        try archive.expect(name)
        let step = try archive.readInt()
        let hasWarmStart = try archive.readBool()
        let layout = try archive.readShapeList().map { self.layout(for: $0) }
        let q = try archive.readFloats()
        let p = options.alternate ? try archive.readFloats() : []
        let error = try archive.readFloats()
        guard q.count == (layout?.qCount ?? 0) || (q.isEmpty && !hasWarmStart),
              !options.alternate || p.count == (layout?.pCount ?? 0) || (p.isEmpty && !hasWarmStart),
              error.isEmpty || error.count == layout?.compressedCount else {
            throw StateArchiveError.unexpectedValue(expected: "PowerSGD factors matching the saved shapes", offset: archive.offset)
        }
        let pending = try archive.readBool()
        let pendingP = try archive.readFloats(), pendingQ = try archive.readFloats()
        guard !pending || (pendingP.count == layout?.pCount && pendingQ.count == layout?.qCount) else {
            throw StateArchiveError.unexpectedValue(expected: "a pending PowerSGD residual matching the saved shapes", offset: archive.offset)
        }
        let restored = PowerStepWorkspace()
        restored.replaceQ(q)
        if options.alternate { restored.replaceP(p) }
        restored.replaceError(error)
        restored.replacePending(p: pendingP, q: pendingQ)
        restored.hasPendingResidual = pending
        self.workspace = restored
        self.step = step
        self.hasWarmStart = hasWarmStart
        self.layout = layout
        // A saved layout passed the cross-worker check before it was saved, and Checkpoint.restore
        // compares the restored replicas across ranks: repeating the all-gather would add a
        // collective the uninterrupted run does not have at this step.
        self.agreementChecked = layout != nil
    }
}

/// The extension point of PowerSGD's power step, once per compressed tensor and training step, in
/// the order the kernels visit the tensors:
/// - `observe(input:)` sees the worker's error-corrected input M_w (n×m, row-major) after
///   step 1 and before any collective. L-GreCo accumulates these inputs to measure the rank-r
///   errors it plans with.
/// - `observe(basis:)` sees P̂ (n×r, row-major, orthonormal or zero columns; the same on every
///   worker) after the last power iteration, before the output is written. The subspace study
///   compares it with the top-r left singular vectors of the averaged input.
/// Both default to doing nothing; plain PowerSGD's observer ignores them.
public protocol PowerStepObserver {
    mutating func observe(input: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout)
    mutating func observe(basis: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout)
}

extension PowerStepObserver {
    public mutating func observe(input: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout) {}
    public mutating func observe(basis: UnsafeBufferPointer<Float>, of entry: MatrixLayout.Entry, in layout: MatrixLayout) {}
}

/// The observer of plain PowerSGD.
struct IgnoringObserver: PowerStepObserver {}

/// Moves an array out of a stored property, leaving an empty one (no copy-on-write copy).
@inline(__always)
func take(_ array: inout [Float]) -> [Float] {
    var moved: [Float] = []
    swap(&moved, &array)
    return moved
}
