import LinearAlgebra

/// Spectral ATOMO (Wang et al. 2018; ALGORITHMS.md §4): sparsify a tensor's SVD atoms.
///
/// The tensor is seen as an n×m matrix G = Σᵢ σᵢ uᵢvᵢᵀ (thin SVD, LAPACK `sgesdd`). Atom i is kept
/// independently with probability pᵢ and sent as (σᵢ/pᵢ, uᵢ, vᵢ), so E[Ĝ] = G. The pᵢ minimize
/// the variance Σ σᵢ²/pᵢ subject to Σ pᵢ = s, 0 < pᵢ ≤ 1 (the active-set algorithm of §4.2,
/// `probabilities(for:budget:)`): the largest atoms saturate at 1, the rest are proportional to σᵢ.
/// No error feedback (unbiased). Independent Bernoulli draws, no resampling to an exact count
/// (§4.4: conditioning on |S| = s would bias the estimate), so message sizes vary.
///
/// Reshape (§4.3 leaves it open): a tensor of rank ≥ 2 uses the same matrix view as PowerSGD,
/// rows = first dimension, columns = the product of the rest (a conv kernel (out, in, kh, kw)
/// becomes out × in·kh·kw). A 1-D tensor of length n becomes a × n/a with a the largest
/// divisor of n not above √n (a 1 × 1 for a scalar): as square as the length allows, with no
/// padding; a prime length gives n × 1 (one atom, always kept when s ≥ 1).
///
/// Message: the kept count c as a 32-bit integer, then per kept atom (ascending σ index) the
/// fp32 values σᵢ/pᵢ, uᵢ (n), vᵢ (m): 4 + 4c(n + m + 1) bytes (§10: 32|S|(n+m+1) bits + 32).
public struct ATOMO: Compressor {
    /// s, the expected number of atoms sent per tensor.
    public let budget: Double
    public let seed: UInt64

    public init(budget: Double, seed: UInt64 = 0) throws {
        guard budget > 0, budget.isFinite else { throw GradientCompressionError.invalidOption("atomo: budget=\(budget) must be positive") }
        self.budget = budget
        self.seed = seed
    }

    public var name: String { ReducerSpecification.reducerName("atomo", [("budget", "\(budget)")]) }

    public func fixedMessageBytes(shape: [Int]) -> Int? { nil }

    /// The matrix view of a tensor of `shape` (see the type's documentation).
    public static func matrixShape(_ shape: [Int]) -> (rows: Int, columns: Int) {
        let n = Tensor.elementCount(shape)
        if shape.count >= 2 { return (shape[0], shape[0] == 0 ? 0 : n / shape[0]) }
        if n == 0 { return (0, 0) }
        var a = Int(Double(n).squareRoot())
        while a > 1 && n % a != 0 { a -= 1 }
        return (a, n / a)
    }

    /// The variance-minimizing inclusion probabilities for magnitudes sorted in descending order
    /// under expected budget s (§4.2). Atoms with λ = 0 get p = 0; Σ p = min(s, #nonzero).
    public static func probabilities(for magnitudes: [Float], budget: Double) -> [Double] {
        var p = [Double](repeating: 0, count: magnitudes.count)
        var remainingBudget = budget
        var tail = magnitudes.reduce(0.0) { $0 + Double($1) }
        for i in magnitudes.indices {
            let lambda = Double(magnitudes[i])
            guard remainingBudget > 0, tail > 0, lambda > 0 else { break }
            if lambda * remainingBudget <= tail {
                // The remaining atoms fit proportionally: pₖ = λₖ·s/S ≤ 1 for every k ≥ i (λ sorted).
                for k in i..<magnitudes.count { p[k] = min(1, Double(magnitudes[k]) * remainingBudget / tail) }
                break
            }
            p[i] = 1
            remainingBudget -= 1
            tail -= lambda
        }
        return p
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let (n, m) = ATOMO.matrixShape(shape)
        let matrix = try Tensor(shape: [n, m], scalars: Array(values))
        let svd: SingularValueDecomposition
        do { svd = try SingularValueDecomposition(matrix) } catch {
            throw CompressorError.nonFiniteInput(method: "atomo", tensor: key.tensor, detail: "SVD failed: \(error)")
        }
        let sigma = svd.singularValues
        let p = ATOMO.probabilities(for: sigma, budget: budget)
        var generator = key.workerGenerator(seed: seed)
        var kept: [Int] = []
        for i in sigma.indices where p[i] > 0 {
            // Bernoulli(pᵢ) by U < pᵢ with U on the 2⁻⁵³ grid.
            if Double(generator.next() >> 11) * 0x1p-53 < p[i] { kept.append(i) }
        }
        let k = sigma.count
        var message: [UInt8] = []
        message.reserveCapacity(4 + 4 * kept.count * (n + m + 1))
        message.appendLittleEndian(UInt32(kept.count))
        for i in kept {
            message.appendLittleEndian((sigma[i] / Float(p[i])).bitPattern)
            for r in 0..<n { message.appendLittleEndian(svd.u.scalars[r * k + i].bitPattern) }
            for c in 0..<m { message.appendLittleEndian(svd.vt.scalars[i * m + c].bitPattern) }
        }
        return message
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let (n, m) = ATOMO.matrixShape(shape)
        var reader = ByteReader(message, context: "ATOMO")
        let count = Int(try reader.readUInt32("the atom count"))
        guard count <= min(n, m) else {
            throw GradientCompressionError.corruptMessage("ATOMO message claims \(count) atoms for a \(n)×\(m) matrix (rank ≤ \(min(n, m)))")
        }
        guard reader.remaining == 4 * count * (n + m + 1) else {
            throw GradientCompressionError.corruptMessage(
                "ATOMO message with \(count) atoms of a \(n)×\(m) matrix must be \(4 + 4 * count * (n + m + 1)) bytes, got \(message.count)")
        }
        guard count > 0 else { return }
        // U·diag(w)·V as one product: scaled left vectors (n×c) times right vectors (c×m).
        var left = [Float](repeating: 0, count: n * count), right = [Float](repeating: 0, count: count * m)
        for a in 0..<count {
            let scale = try reader.readFloat("atom \(a)'s weight")
            var finite = scale.isFinite
            for r in 0..<n { let x = try reader.readFloat("atom \(a)"); finite = finite && x.isFinite; left[r * count + a] = weight * scale * x }
            for c in 0..<m { let x = try reader.readFloat("atom \(a)"); finite = finite && x.isFinite; right[a * m + c] = x }
            guard finite else {
                throw GradientCompressionError.corruptMessage("ATOMO atom \(a) holds a non-finite value")
            }
        }
        guard left.allSatisfy(\.isFinite) else { throw GradientCompressionError.corruptMessage("ATOMO atom weights overflow") }
        var product = [Float](repeating: 0, count: n * m)
        left.withUnsafeBufferPointer { l in right.withUnsafeBufferPointer { r in product.withUnsafeMutableBufferPointer { o in
            sgemm(.none, .none, m: n, n: m, k: count, a: l.baseAddress!, lda: count, b: r.baseAddress!, ldb: m, c: o.baseAddress!, ldc: m)
        } } }
        guard product.allSatisfy(\.isFinite) else { throw GradientCompressionError.corruptMessage("ATOMO atoms overflow fp32 when combined") }
        for i in 0..<n * m { output[i] += product[i] }
    }
}

extension ATOMO {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "atomo", summary: "ATOMO: unbiased sampling of each matrix's singular atoms with an expected `budget` atoms, all-gathered",
        options: [ReducerOption("budget", .number(1e-6...1e9), default: "2"), .seed]) { o, seed in
        AllGatherReducer(try ATOMO(budget: try o.double("budget"), seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF)))
    }
}
