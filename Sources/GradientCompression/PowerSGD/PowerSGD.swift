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
/// Tensors that do not pass the compression test (every 1-D one) are all-reduced exactly in
/// one more packed buffer; their error memory is 0. So a step is 3 collectives.
///
/// With `subspaceRefreshPeriod > 0` this is PowerSGD+ as designed here (§2, see
/// `Options.subspaceRefreshPeriod` and docs/powersgd.md).
///
/// Momentum, weight decay and the learning rate belong to the optimizer, applied after the
/// reduce (Algorithm 2).
public struct PowerSGD: GradientReducer {
    public let options: Options

    /// The layout of the gradient list, built on the first call.
    var layout: MatrixLayout?
    /// Calls to `reduce` so far (plain and compressed).
    var step = 0
    /// Whether `q` holds a warm-start Q (false until the first compressed step).
    var hasWarmStart = false
    /// All Q factors, packed (m×r each, row-major).
    var q: [Float] = []
    /// All error-feedback memories of compressed tensors, packed.
    var error: [Float] = []
    /// Whether the workers' shape lists were compared since this reducer was built or restored.
    var agreementChecked = false
    /// Per-tensor requested ranks (L-GreCo's plan); nil: `options.rank` for every tensor.
    var requestedRanks: [Int]?
    /// When set, each compressed step adds `accumulationWeight · M` (the error-corrected input
    /// of every compressed tensor, packed like `error`) into `inputAccumulator` (L-GreCo, §7.1).
    var accumulationWeight: Float?
    var inputAccumulator: [Float] = []
    /// Whether `error` holds M of the last step with the residual correction P̂·Q_cᵀ
    /// (`pendingP`, `pendingQ`) still to subtract (see `powerStep`).
    var hasPendingResidual = false
    var pendingP: [Float] = []
    var pendingQ: [Float] = []

    // Scratch buffers, reused across steps (not state).
    var p: [Float] = []
    var localQ: [Float] = []
    var uncompressed: [Float] = []

    public init(_ options: Options = Options()) throws {
        try options.validate()
        self.options = options
    }

    /// `powersgd(rank=2,...)` (`powersgd+(...)` with a refresh period): the options that differ
    /// from the defaults, in the syntax `ReducerSpecification` parses.
    public var name: String {
        ReducerSpecification.reducerName(options.subspaceRefreshPeriod > 0 ? "powersgd+" : "powersgd", options.nameOptions)
    }

    /// The layout for this gradient list (for tests and reports: which tensors are compressed).
    public func layout(for shapes: [[Int]]) -> MatrixLayout {
        MatrixLayout(shapes: shapes, ranks: requestedRanks ?? [options.rank], minCompressionRate: options.minCompressionRate,
                     groupSameShapes: options.groupSameShapes)
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        try prepare(gradients, over: group)
        let layout = self.layout!
        defer { step += 1 }
        if step < options.startIteration {
            try allReduceEverything(&gradients, layout: layout, over: group)
            return meter.finish(uncompressedBytes: 4 * layout.totalCount, relativeError: 0)
        }
        let compressedStep = step - options.startIteration
        let relativeError: Double
        if options.subspaceRefreshPeriod > 0, compressedStep % options.subspaceRefreshPeriod == 0 {
            relativeError = try refreshStep(&gradients, layout: layout, over: group)
        } else {
            relativeError = try powerStep(&gradients, layout: layout, over: group)
            if options.warmStart { reviveZeroColumns(layout: layout) }
        }
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
        if q.count != layout.qCount { q = [Float](repeating: 0, count: layout.qCount) }
        if options.errorFeedback != .off, error.count != layout.compressedCount {
            error = [Float](repeating: 0, count: layout.compressedCount)
        }
        if p.count != layout.pCount { p = [Float](repeating: 0, count: layout.pCount) }
        if uncompressed.count != layout.uncompressedCount { uncompressed = [Float](repeating: 0, count: layout.uncompressedCount) }
    }

    /// Draws Q_i for every compressed tensor from the shared generator, keyed by (seed, step, i).
    mutating func drawQ(layout: MatrixLayout) {
        let step = UInt64(self.step), seed = options.seed
        q.withUnsafeMutableBufferPointer { buffer in
            for (index, entry) in layout.compressedEntries {
                let part = UnsafeMutableBufferPointer(rebasing: buffer[entry.qOffset ..< entry.qOffset + entry.columns * entry.rank])
                Philox(seed: seed, stream: Philox.stream(step, UInt64(index))).fillNormal(part)
            }
        }
        hasWarmStart = true
    }

    /// A zero column of the warm-start Q (a zero gradient — a frozen layer — or a gradient of
    /// rank below r makes P̂ and then Q̄ have zero columns) would stay zero forever, since
    /// M·0 = 0: the approximation would lose that rank for good. Such columns are redrawn from
    /// the shared generator, keyed by (seed, step, tensor, column); Q̄ is identical on every
    /// worker, so every worker redraws the same columns with the same values.
    mutating func reviveZeroColumns(layout: MatrixLayout) {
        let step = UInt64(self.step), seed = options.seed
        q.withUnsafeMutableBufferPointer { qb in
            for (index, entry) in layout.compressedEntries {
                let (m, r) = (entry.columns, entry.rank)
                let block = qb.baseAddress! + entry.qOffset
                for k in 0..<r {
                    var zero = true
                    for j in 0..<m where block[j &* r &+ k] != 0 { zero = false; break }
                    guard zero else { continue }
                    var column = [Float](repeating: 0, count: m)
                    column.withUnsafeMutableBufferPointer {
                        Philox(seed: seed, stream: Philox.stream(step, UInt64(index), UInt64(k) &+ 1)).fillNormal($0)
                    }
                    for j in 0..<m { block[j &* r &+ k] = column[j] }
                }
            }
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
    mutating func powerStep(_ gradients: inout [Tensor], layout: MatrixLayout, over group: any Communicator) throws -> Double {
        if !options.warmStart || !hasWarmStart { drawQ(layout: layout) }
        let feedback = options.errorFeedback
        let method = options.orthonormalization ?? .preferred(rank: options.rank)
        let epsilon = options.orthogonalizationEpsilon
        if localQ.count != layout.qCount { localQ = [Float](repeating: 0, count: layout.qCount) }
        let pending = hasPendingResidual
        if feedback != .off, pendingP.count != layout.pCount {
            pendingP = [Float](repeating: 0, count: layout.pCount)
            pendingQ = [Float](repeating: 0, count: layout.qCount)
        }
        // Move the buffers out of `self` so closures can hold their pointers without
        // overlapping access to `self`; they are moved back at the end (no copies).
        var q = take(&self.q), p = take(&self.p), error = take(&self.error)
        var localQ = take(&self.localQ), uncompressed = take(&self.uncompressed)
        var accumulator = take(&self.inputAccumulator)
        var pendingP = take(&self.pendingP), pendingQ = take(&self.pendingQ)
        defer {
            self.q = q; self.p = p; self.error = error; self.localQ = localQ; self.uncompressed = uncompressed
            self.inputAccumulator = accumulator; self.pendingP = pendingP; self.pendingQ = pendingQ
        }
        if accumulationWeight != nil, accumulator.count != layout.compressedCount {
            accumulator = [Float](repeating: 0, count: layout.compressedCount)
        }
        let maxThin = layout.entries.map { $0.rank * $0.columns }.max() ?? 0
        var qtMean = [Float](repeating: 0, count: maxThin), qtOther = [Float](repeating: 0, count: maxThin)
        var inputSquares = [Double](repeating: 0, count: layout.entries.count)

        try q.withUnsafeMutableBufferPointer { qb in
        try p.withUnsafeMutableBufferPointer { pb in
        try error.withUnsafeMutableBufferPointer { eb in
        try localQ.withUnsafeMutableBufferPointer { lqb in
        try pendingP.withUnsafeMutableBufferPointer { ppb in
        try pendingQ.withUnsafeMutableBufferPointer { pqb in
        try qtMean.withUnsafeMutableBufferPointer { qtm in
        try qtOther.withUnsafeMutableBufferPointer { qto in
            // 1. Pack the uncompressed tensors; E ← G + E − P̂'Q_c'ᵀ (last step's pending
            //    residual), so E holds M; P_w = M·Q.
            layout.packUncompressed(gradients, into: &uncompressed)
            for (index, entry) in layout.compressedEntries {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                LowRankKernels.transpose(qb.baseAddress! + entry.qOffset, rows: m, columns: r, into: qtm.baseAddress!)
                var correction: LowRankKernels.Correction?
                if feedback != .off, pending {
                    LowRankKernels.transpose(pqb.baseAddress! + entry.qOffset, rows: m, columns: r, into: qto.baseAddress!)
                    correction = .init(pHat: ppb.baseAddress! + entry.pOffset, qt: qto.baseAddress!)
                }
                inputSquares[index] = gradients[index].withUnsafeBufferPointer { g in
                    LowRankKernels.project(gradient: g.baseAddress!, error: feedback == .off ? nil : eb.baseAddress! + entry.errorOffset,
                                           correction: correction, rows: n, columns: m, qt: qtm.baseAddress!, rank: r,
                                           into: pb.baseAddress! + entry.pOffset)
                }
            }
            // (L-GreCo) A += weight · M.
            if let weight = accumulationWeight {
                accumulator.withUnsafeMutableBufferPointer { ab in
                    for (index, entry) in layout.compressedEntries {
                        let target = UnsafeMutableBufferPointer(rebasing: ab[entry.errorOffset ..< entry.errorOffset + entry.count])
                        if feedback == .off {
                            gradients[index].withUnsafeBufferPointer { Vector.axpy(weight, $0, target) }
                        } else {
                            Vector.axpy(weight, UnsafeBufferPointer(rebasing: eb[entry.errorOffset ..< entry.errorOffset + entry.count]), target)
                        }
                    }
                }
            }
            // 2. One all-reduce for the uncompressed tensors (mean), one for all P's (sum).
            try uncompressed.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }
            try group.allReduce(pb, operation: .sum)
            // 3.–4. P̂ = orth(P); Q_w = M_wᵀ P̂.
            for (index, entry) in layout.compressedEntries {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                let pHat = pb.baseAddress! + entry.pOffset
                try method.apply(pHat, rows: n, columns: r, epsilon: epsilon)
                let qOut = qb.baseAddress! + entry.qOffset
                if feedback == .off {
                    gradients[index].withUnsafeBufferPointer {
                        TallSkinny.multiplyTransposed($0.baseAddress!, rows: n, columns: m, by: pHat, rank: r, into: qOut)
                    }
                } else {
                    TallSkinny.multiplyTransposed(eb.baseAddress! + entry.errorOffset, rows: n, columns: m, by: pHat, rank: r, into: qOut)
                }
            }
            // 5. Keep the local Q_w, then Q̄ = mean over workers.
            lqb.baseAddress!.update(from: qb.baseAddress!, count: qb.count)
            try group.allReduce(qb, operation: .mean)
            // 6. G ← P̂Q̄ᵀ (one write pass); the residual E ← M − P̂Q_cᵀ is left pending.
            for (index, entry) in layout.compressedEntries {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                LowRankKernels.transpose(qb.baseAddress! + entry.qOffset, rows: m, columns: r, into: qtm.baseAddress!)
                gradients[index].withUnsafeMutableBufferPointer { g in
                    LowRankKernels.expand(pHat: pb.baseAddress! + entry.pOffset, rank: r, qt: qtm.baseAddress!,
                                          rows: n, columns: m, into: g.baseAddress!)
                }
            }
            if feedback != .off {
                ppb.baseAddress!.update(from: pb.baseAddress!, count: pb.count)
                pqb.baseAddress!.update(from: feedback == .local ? lqb.baseAddress! : qb.baseAddress!, count: qb.count)
            }
            layout.unpackUncompressed(uncompressed, into: &gradients)
        } } } } } } } }
        hasPendingResidual = feedback != .off
        // ‖M − P̂Q_cᵀ‖² per tensor from the factors (Q_c = Q_w for variant B, else Q̄).
        var input = 0.0, residual = 0.0
        for (index, entry) in layout.compressedEntries {
            var local = 0.0, cross = 0.0, mean = 0.0
            for j in entry.qOffset ..< entry.qOffset + entry.columns * entry.rank {
                let a = Double(localQ[j]), b = Double(q[j])
                local += a * a; cross += a * b; mean += b * b
            }
            input += inputSquares[index]
            residual += feedback == .local ? max(0, inputSquares[index] - local) : max(0, inputSquares[index] - 2 * cross + mean)
        }
        // 7. Q̄ stays in `q` as the next step's warm start (`reduce` revives its zero columns).
        return input > 0 ? (residual / input).squareRoot() : 0
    }

    /// Applies the pending residual correction (E ← E − P̂Q_cᵀ) so that `error` holds the true
    /// error memory: before a re-plan changes the layout and before a PowerSGD+ refresh.
    mutating func settlePendingResidual() {
        guard hasPendingResidual else { return }
        error = errorMemory
        hasPendingResidual = false
    }

    /// The error memory E − P̂Q_cᵀ (packed like `error`), with the pending correction applied.
    var errorMemory: [Float] {
        guard hasPendingResidual, let layout else { return error }
        var result = error
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
        var offset = 0
        let placements = gradients.indices.map { index -> TensorPlacement in
            defer { offset += gradients[index].count }
            return TensorPlacement(tensor: index, offset: offset)
        }
        try TensorPlacement.allReduceMean(&gradients, placements, count: offset, over: group)
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("powersgd")
        archive.write(name)
        archive.write(step)
        archive.write(hasWarmStart)
        archive.writeShapeList(layout?.shapes)
        archive.write(q)
        archive.write(error)
        archive.write(hasPendingResidual)
        archive.write(hasPendingResidual ? pendingP : [])
        archive.write(hasPendingResidual ? pendingQ : [])
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("powersgd")
        try archive.expect(name)
        let step = try archive.readInt()
        let hasWarmStart = try archive.readBool()
        let layout = try archive.readShapeList().map { self.layout(for: $0) }
        let q = try archive.readFloats(), error = try archive.readFloats()
        guard q.count == (layout?.qCount ?? 0) || (q.isEmpty && !hasWarmStart),
              error.isEmpty || error.count == layout?.compressedCount else {
            throw StateArchiveError.unexpectedValue(expected: "PowerSGD factors matching the saved shapes", offset: archive.offset)
        }
        let pending = try archive.readBool()
        let pendingP = try archive.readFloats(), pendingQ = try archive.readFloats()
        guard !pending || (pendingP.count == layout?.pCount && pendingQ.count == layout?.qCount) else {
            throw StateArchiveError.unexpectedValue(expected: "a pending PowerSGD residual matching the saved shapes", offset: archive.offset)
        }
        self.hasPendingResidual = pending
        self.pendingP = pendingP
        self.pendingQ = pendingQ
        self.step = step
        self.hasWarmStart = hasWarmStart
        self.layout = layout
        self.q = q
        self.error = error
        // A saved layout passed the cross-worker check before it was saved, and Checkpoint.restore
        // compares the restored replicas across ranks: repeating the all-gather would add a
        // collective the uninterrupted run does not have at this step.
        self.agreementChecked = layout != nil
    }
}

/// Moves an array out of a stored property, leaving an empty one (no copy-on-write copy).
@inline(__always)
func take(_ array: inout [Float]) -> [Float] {
    var moved: [Float] = []
    swap(&moved, &array)
    return moved
}
