import Collectives
import LinearAlgebra

/// PowerSGD (Vogels, Karimireddy and Jaggi, NeurIPS 2019): rank-r compression of every gradient
/// matrix by one step of power iteration, warm-started from the previous step, with error
/// feedback, aggregated by all-reduce. ALGORITHMS.md §1.
///
/// Per compressed matrix M (this worker's gradient plus its error, viewed as
/// `shape[0] × rest`), with Q (m×r) shared by all workers:
/// 1. P_w = M_w·Q                    — all P's of the step packed in one buffer
/// 2. P = Σ_w P_w                    — all-reduce (sum; the scale is removed by step 3)
/// 3. P̂ = orthonormalize(P)
/// 4. Q_w = M_wᵀ·P̂
/// 5. (local error feedback) e_w = M_w − P̂·Q_wᵀ   — what this worker's input lost
/// 6. Q = (1/W) Σ_w Q_w              — all-reduce (mean), kept for the next step's warm start
/// 7. Δ' = P̂·Qᵀ = P̂ P̂ᵀ M̄             — the projection of the *average* onto span(P̂)
/// Tensors too small to gain (see `PowerSGDOptions.minCompressionRate`), 1-D ones included, are
/// averaged by one uncompressed all-reduce. Three collectives per step in all.
///
/// Because Δ' is linear in the workers' inputs, averaging compressed pieces equals compressing
/// the average: the paper's "linearity", tested in `PowerSGDTests`.
public struct PowerSGD: GradientReducer {
    public let options: PowerSGDOptions
    public var name: String { "powersgd(rank=\(options.rank))" }

    /// One compressed matrix: where its factors live in the packed P and Q buffers.
    struct Matrix {
        var tensor: Int
        var rows: Int
        var columns: Int
        var rank: Int
        var pOffset: Int
        var qOffset: Int
    }

    struct Plan {
        var shapes: [[Int]]
        var matrices: [Matrix]
        var uncompressed: [Int]
        var pCount: Int
        var qCount: Int
        var uncompressedCount: Int
    }

    private var plan: Plan?
    /// Calls to `reduce` so far (the step counter of the shared generator and of `startIteration`).
    public private(set) var step = 0
    /// The packed Q factors: after a compressed step, the group's mean Q (the warm start).
    private var q: [Float] = []
    private var qIsWarm = false
    /// Error-feedback memory per compressed matrix (empty when error feedback is off).
    private var errors: [[Float]] = []
    private var p: [Float] = []
    private var uncompressedBuffer: [Float] = []

    public init(options: PowerSGDOptions = PowerSGDOptions()) throws {
        try options.validate()
        self.options = options
    }

    // MARK: - Plan

    static func makePlan(shapes: [[Int]], options: PowerSGDOptions) -> Plan {
        var matrices: [Matrix] = []
        var uncompressed: [Int] = []
        var pCount = 0, qCount = 0, uncompressedCount = 0
        for (index, shape) in shapes.enumerated() {
            let count = Tensor.elementCount(shape)
            let n = shape.first ?? 1
            let m = n == 0 ? 0 : count / n
            let r = min(options.rank, n, m)
            if shape.count >= 2, r > 0, Double(n + m) * Double(r) * options.minCompressionRate < Double(n) * Double(m) {
                matrices.append(Matrix(tensor: index, rows: n, columns: m, rank: r, pOffset: pCount, qOffset: qCount))
                pCount += n * r
                qCount += m * r
            } else {
                uncompressed.append(index)
                uncompressedCount += count
            }
        }
        return Plan(shapes: shapes, matrices: matrices, uncompressed: uncompressed, pCount: pCount, qCount: qCount,
                    uncompressedCount: uncompressedCount)
    }

    private mutating func install(_ newPlan: Plan) {
        plan = newPlan
        q = [Float](repeating: 0, count: newPlan.qCount)
        p = [Float](repeating: 0, count: newPlan.pCount)
        uncompressedBuffer = [Float](repeating: 0, count: newPlan.uncompressedCount)
        errors = options.errorFeedback ? newPlan.matrices.map { [Float](repeating: 0, count: $0.rows * $0.columns) } : []
        qIsWarm = false
    }

    /// The first call builds the plan and checks that every worker has the same gradient shapes
    /// (two all-reduces of a 5-float signature); later calls check the shapes locally, so a
    /// worker whose list changes fails with an error naming the tensor, and the others get the
    /// communicator's peer-failure error naming that worker — nobody hangs.
    private mutating func preparePlan(for gradients: [Tensor], group: any Communicator) throws -> Plan {
        let shapes = gradients.map(\.shape)
        if let plan {
            guard shapes.count == plan.shapes.count else {
                throw GradientCompressionError.tensorCountMismatch(expected: plan.shapes.count, found: shapes.count)
            }
            for (index, shape) in shapes.enumerated() where shape != plan.shapes[index] {
                throw GradientCompressionError.shapeMismatch(tensor: index, expected: plan.shapes[index], found: shape)
            }
            return plan
        }
        try ShapeSignature.agree(on: shapes, group: group)
        install(Self.makePlan(shapes: shapes, options: options))
        return self.plan!
    }

    // MARK: - Reduce

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        let plan = try preparePlan(for: gradients, group: group)
        defer { step += 1 }
        let totalCount = gradients.reduce(0) { $0 + $1.count }
        if step < options.startIteration || plan.matrices.isEmpty {
            var all = UncompressedReducer()
            _ = try all.reduce(&gradients, over: group)
            return meter.finish(uncompressedBytes: 4 * totalCount, relativeError: 0)
        }
        // Work on local arrays (moved out of self, no copy) so the kernels below can hold
        // pointers into several of them at once.
        var p = self.p, q = self.q, errors = self.errors, uncompressed = self.uncompressedBuffer
        self.p = []; self.q = []; self.errors = []; self.uncompressedBuffer = []
        defer { self.p = p; self.q = q; self.errors = errors; self.uncompressedBuffer = uncompressed }
        let errorFeedback = options.errorFeedback, local = options.errorFeedbackResidual == .local

        pack(plan.uncompressed, of: gradients, into: &uncompressed)

        // 1. M = g + e (into the error buffer), and P_w = M·Q.
        var inputSquares: Float = 0
        for (k, matrix) in plan.matrices.enumerated() {
            if !options.warmStart || !qIsWarm {
                let generator = Philox(seed: options.seed, stream: Philox.stream(UInt64(step), UInt64(matrix.tensor)))
                q.withUnsafeMutableBufferPointer { buffer in
                    generator.fillNormal(UnsafeMutableBufferPointer(
                        rebasing: buffer[matrix.qOffset ..< matrix.qOffset + matrix.columns * matrix.rank]))
                }
            }
            if errorFeedback {
                inputSquares += gradients[matrix.tensor].withUnsafeBufferPointer { g in
                    errors[k].withUnsafeMutableBufferPointer { e in ErrorFeedbackKernels.accumulate(g, into: e) }
                }
            }
            let input = errorFeedback ? errors[k] : gradients[matrix.tensor].scalars
            input.withUnsafeBufferPointer { m in q.withUnsafeBufferPointer { qb in p.withUnsafeMutableBufferPointer { pb in
                TallSkinny.multiply(m.baseAddress!, rows: matrix.rows, columns: matrix.columns, by: qb.baseAddress! + matrix.qOffset,
                                    rank: matrix.rank, into: pb.baseAddress! + matrix.pOffset)
            } } }
        }
        // 2. P = Σ_w P_w.
        try p.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .sum) }
        // 3. P̂ = orthonormalize(P), per matrix.
        try p.withUnsafeMutableBufferPointer { buffer in
            for matrix in plan.matrices {
                try Orthonormalization.preferred(rank: matrix.rank).apply(
                    buffer.baseAddress! + matrix.pOffset, rows: matrix.rows, columns: matrix.rank,
                    epsilon: options.orthogonalizationEpsilon)
            }
        }
        // 4. Q_w = Mᵀ·P̂, and 5. (local residual) e = M − P̂·Q_wᵀ, before the factors are averaged.
        var residualSquares: Float = 0
        for (k, matrix) in plan.matrices.enumerated() {
            let input = errorFeedback ? errors[k] : gradients[matrix.tensor].scalars
            input.withUnsafeBufferPointer { m in p.withUnsafeBufferPointer { pb in q.withUnsafeMutableBufferPointer { qb in
                TallSkinny.multiplyTransposed(m.baseAddress!, rows: matrix.rows, columns: matrix.columns,
                                              by: pb.baseAddress! + matrix.pOffset, rank: matrix.rank,
                                              into: qb.baseAddress! + matrix.qOffset)
            } } }
            if errorFeedback && local {
                residualSquares += errors[k].withUnsafeMutableBufferPointer { e in
                    Self.outerProduct(matrix, p: p, q: q, into: e.baseAddress!, subtract: true)
                    return Vector.sumOfSquares(UnsafeBufferPointer(e))
                }
            }
        }
        // 6. Q = mean_w Q_w (the next step's warm start), and the uncompressed tensors' mean.
        try q.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }
        qIsWarm = true
        try uncompressed.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }

        // 7. Δ' = P̂·Qᵀ into the gradients; (global residual) e = M − Δ'.
        for (k, matrix) in plan.matrices.enumerated() {
            gradients[matrix.tensor].withUnsafeMutableBufferPointer { out in
                Self.outerProduct(matrix, p: p, q: q, into: out.baseAddress!, subtract: false)
            }
            if errorFeedback && !local {
                residualSquares += gradients[matrix.tensor].withUnsafeBufferPointer { out in
                    errors[k].withUnsafeMutableBufferPointer { e in
                        Vector.axpy(-1, out, e)
                        return Vector.sumOfSquares(UnsafeBufferPointer(e))
                    }
                }
            }
        }
        unpack(plan.uncompressed, from: uncompressed, into: &gradients)
        let relativeError: Double? = errorFeedback && inputSquares > 0 ? Double((residualSquares / inputSquares).squareRoot()) : nil
        return meter.finish(uncompressedBytes: 4 * totalCount, relativeError: relativeError)
    }

    /// out ← P̂·Qᵀ, or out ← out − P̂·Qᵀ (a rank-r product through BLAS, writing out once).
    static func outerProduct(_ matrix: Matrix, p: [Float], q: [Float], into out: UnsafeMutablePointer<Float>, subtract: Bool) {
        p.withUnsafeBufferPointer { pb in
            q.withUnsafeBufferPointer { qb in
                sgemm(.none, .transposed, m: matrix.rows, n: matrix.columns, k: matrix.rank, alpha: subtract ? -1 : 1,
                      a: pb.baseAddress! + matrix.pOffset, lda: matrix.rank, b: qb.baseAddress! + matrix.qOffset, ldb: matrix.rank,
                      beta: subtract ? 1 : 0, c: out, ldc: matrix.columns)
            }
        }
    }

    // MARK: - Checkpoint

    public func saveState(to archive: inout StateWriter) {
        archive.write("powersgd")
        archive.write(step)
        archive.write(plan != nil)
        guard let plan else { return }
        archive.write(plan.shapes.count)
        for shape in plan.shapes { archive.write(shape.count); for extent in shape { archive.write(extent) } }
        archive.write(qIsWarm)
        archive.write(q)
        archive.write(errors.count)
        for e in errors { archive.write(e) }
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("powersgd")
        step = try archive.readInt()
        guard try archive.readBool() else { plan = nil; return }
        let count = try archive.readInt()
        guard (0...1_000_000).contains(count) else { throw StateArchiveError.unexpectedValue(expected: "tensor count", offset: archive.offset) }
        var shapes: [[Int]] = []
        for _ in 0..<count {
            let dims = try archive.readInt()
            guard (0...16).contains(dims) else { throw StateArchiveError.unexpectedValue(expected: "rank of a shape", offset: archive.offset) }
            shapes.append(try (0..<dims).map { _ in try archive.readInt() })
        }
        install(Self.makePlan(shapes: shapes, options: options))
        qIsWarm = try archive.readBool()
        let savedQ = try archive.readFloats()
        let errorCount = try archive.readInt()
        guard savedQ.count == q.count, errorCount == errors.count else {
            throw GradientCompressionError.invalidOption("powersgd checkpoint was written with other options (rank or error feedback differ)")
        }
        q = savedQ
        for k in 0..<errorCount {
            let e = try archive.readFloats()
            guard e.count == errors[k].count else {
                throw GradientCompressionError.invalidOption("powersgd checkpoint: error buffer \(k) has \(e.count) values, expected \(errors[k].count)")
            }
            errors[k] = e
        }
    }
}

/// Packing of the tensors that travel uncompressed into one buffer, and back.
func pack(_ indices: [Int], of tensors: [Tensor], into buffer: inout [Float]) {
    buffer.withUnsafeMutableBufferPointer { out in
        var offset = 0
        for index in indices {
            tensors[index].withUnsafeBufferPointer { t in
                if let base = t.baseAddress { (out.baseAddress! + offset).update(from: base, count: t.count) }
            }
            offset += tensors[index].count
        }
    }
}

func unpack(_ indices: [Int], from buffer: [Float], into tensors: inout [Tensor]) {
    buffer.withUnsafeBufferPointer { source in
        var offset = 0
        for index in indices {
            tensors[index].withUnsafeMutableBufferPointer { t in
                if let base = t.baseAddress { base.update(from: source.baseAddress! + offset, count: t.count) }
            }
            offset += tensors[index].count
        }
    }
}
