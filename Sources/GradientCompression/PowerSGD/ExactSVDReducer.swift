import Collectives
import LinearAlgebra

/// The exact rank-r SVD baseline of the PowerSGD paper (`SVDReducer`, ALGORITHMS.md §1.8):
/// each worker takes the truncated SVD of its own error-corrected matrix, the factors
/// (U_r, S_r, V_r) of all workers are all-gathered, and every worker averages the W rank-r
/// reconstructions — the best possible rank-r message per worker, at the price of a thin SVD
/// per matrix per step and an all-gather (received bytes grow with W).
///
/// Same layout rule as PowerSGD (`MatrixLayout`); uncompressed tensors are all-reduced.
/// Error feedback (on by default): E_w ← M_w − U_r S_r V_rᵀ, the local residual.
/// Payload per compressed matrix: 4·r(n+m) bytes — S_r is folded into U_r (U_r·S_r is sent),
/// one float per rank less than paper-code's 32·r(n+m+1) bits, with the same information.
public struct ExactSVDReducer: GradientReducer {
    public let rank: Int
    public let minCompressionRate: Double
    public let errorFeedback: Bool

    var layout: MatrixLayout?
    var error: [Float] = []
    var agreementChecked = false

    public init(rank: Int = 2, minCompressionRate: Double = 2, errorFeedback: Bool = true) throws {
        guard rank >= 1 else { throw GradientCompressionError.invalidOption("svd rank must be at least 1 (got \(rank))") }
        guard minCompressionRate.isFinite, minCompressionRate > 0 else {
            throw GradientCompressionError.invalidOption("svd min-compression-rate must be positive (got \(minCompressionRate))")
        }
        self.rank = rank
        self.minCompressionRate = minCompressionRate
        self.errorFeedback = errorFeedback
    }

    public var name: String {
        var parts: [(key: String, value: String)] = [("rank", "\(rank)")]
        if minCompressionRate != 2 { parts.append(("min-compression-rate", "\(minCompressionRate)")) }
        if !errorFeedback { parts.append(("error-feedback", "off")) }
        return ReducerSpecification.reducerName("svd", parts)
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        if layout == nil { layout = MatrixLayout(shapes: gradients.map(\.shape), ranks: [rank], minCompressionRate: minCompressionRate) }
        if !agreementChecked { try MatrixLayout.checkAgreement(gradients.map(\.shape), over: group); agreementChecked = true }
        let layout = self.layout!
        try layout.validate(gradients)
        if errorFeedback, error.count != layout.compressedCount { error = [Float](repeating: 0, count: layout.compressedCount) }

        try layout.allReduceUncompressed(&gradients, over: group)

        // Local truncated SVDs; message = per matrix U_r·S_r (n×r), then V_rᵀ (r×m).
        var message: [Float] = []
        var inputSquares = 0.0, residualSquares = 0.0
        for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            var input = gradients[index]
            if errorFeedback {
                for j in 0..<entry.count { input.scalars[j] += error[entry.errorOffset + j] }
            }
            let svd = try SingularValueDecomposition(try input.reshaped(to: [n, m]))
            let k = svd.singularValues.count
            for i in 0..<n { for j in 0..<r { message.append(svd.u.scalars[i * k + j] * svd.singularValues[j]) } }
            message.append(contentsOf: svd.vt.scalars[0 ..< r * m])
            let approximation = svd.reconstruction(rank: r)
            for j in 0..<entry.count {
                let residual = input.scalars[j] - approximation.scalars[j]
                if errorFeedback { error[entry.errorOffset + j] = residual }
                inputSquares += Double(input.scalars[j] * input.scalars[j])
                residualSquares += Double(residual * residual)
            }
        }
        let bytes = message.withUnsafeBytes { Array($0) }
        let all = try group.allGather(bytes)
        let messages = try all.enumerated().map { rank, bytes -> [Float] in
            guard bytes.count == 4 * message.count else {
                throw GradientCompressionError.corruptMessage("worker \(rank) sent \(bytes.count) bytes of SVD factors, expected \(4 * message.count)")
            }
            return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        // Average of the W reconstructions as one product: [U₁S₁ … U_WS_W] · [V₁ᵀ; …; V_Wᵀ] / W.
        let w = messages.count
        var offset = 0
        for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
            let (n, m, r) = (entry.rows, entry.columns, entry.rank)
            var left = [Float](repeating: 0, count: n * w * r), right = [Float](repeating: 0, count: w * r * m)
            for (worker, factors) in messages.enumerated() {
                for i in 0..<n { for j in 0..<r { left[i * w * r + worker * r + j] = factors[offset + i * r + j] } }
                for j in 0..<(r * m) { right[worker * r * m + j] = factors[offset + n * r + j] }
            }
            offset += r * (n + m)
            left.withUnsafeBufferPointer { a in right.withUnsafeBufferPointer { b in
                gradients[index].withUnsafeMutableBufferPointer { c in
                    sgemm(.none, .none, m: n, n: m, k: w * r, alpha: 1 / Float(w), a: a.baseAddress!, lda: w * r,
                          b: b.baseAddress!, ldb: m, c: c.baseAddress!, ldc: m)
                }
            } }
        }
        let relative = inputSquares > 0 ? (residualSquares / inputSquares).squareRoot() : 0
        return meter.finish(uncompressedBytes: 4 * layout.totalCount, relativeError: relative)
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("svd")
        archive.write(name)
        archive.writeShapeList(layout?.shapes)
        archive.write(error)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("svd")
        try archive.expect(name)
        let restored = try archive.readShapeList().map {
            MatrixLayout(shapes: $0, ranks: [rank], minCompressionRate: minCompressionRate)
        }
        let error = try archive.readFloats()
        guard error.isEmpty || error.count == restored?.compressedCount else {
            throw StateArchiveError.unexpectedValue(expected: "an error memory matching the saved shapes", offset: archive.offset)
        }
        layout = restored
        self.error = error
        agreementChecked = restored != nil  // as in PowerSGD.restoreState
    }
}

extension ExactSVDReducer {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "svd", summary: "exact rank-r SVD per worker, factors all-gathered",
        options: [ReducerOption("rank", .integer(1...4096), default: "2"),
                  ReducerOption("min-compression-rate", .number(1e-9...1e9), default: "2"),
                  ReducerOption("error-feedback", .flag, default: "true")]) { o, _ in
        try ExactSVDReducer(rank: try o.int("rank"), minCompressionRate: try o.double("min-compression-rate"),
                            errorFeedback: try o.bool("error-feedback"))
    }
}
