import LinearAlgebra

/// Random-K with indices from a shared seed (ALGORITHMS.md §5.4): every worker draws the same k
/// indices for (seed, step, tensor) without communication, so the k values are all-reduced
/// (32k bits per worker, `AllReduceReducer`).
///
/// `unbiased: true` scales the decoded values by n/k, making E[D(C(v))] = v (no error feedback);
/// `unbiased: false` is the contractive form to use inside `ErrorFeedback` — §5.4 warns not to
/// combine the n/k scaling with EF.
public struct RandomK: LinearCompressor {
    public let ratio: Double
    public let unbiased: Bool
    public let seed: UInt64

    public init(ratio: Double, unbiased: Bool = false, seed: UInt64 = 0) throws {
        guard ratio > 0, ratio <= 1 else { throw GradientCompressionError.invalidOption("randomk: ratio=\(ratio) must be in (0, 1]") }
        self.ratio = ratio
        self.unbiased = unbiased
        self.seed = seed
    }

    /// Biased Random-K says `feedback=none` because the catalog's `randomk` runs it with error
    /// feedback unless told otherwise (`ErrorFeedback` names its own mode).
    public var name: String {
        ReducerSpecification.reducerName("randomk", [("ratio", "\(ratio)")] + (unbiased ? [("unbiased", "true")] : [("feedback", "none")]))
    }

    public func coefficientCount(shape: [Int]) -> Int { sparseCount(ratio: ratio, elements: Tensor.elementCount(shape)) }

    /// The k shared indices, ascending: Floyd's algorithm draws a uniform k-subset of 0..<n with
    /// exactly k generator calls, marked in a bitmap that is then read in order.
    public func indices(elements n: Int, key: CompressionKey) -> [Int] {
        let k = sparseCount(ratio: ratio, elements: n)
        var generator = key.sharedStream(seed: seed)
        var bitmap = [UInt64](repeating: 0, count: (n + 63) / 64)
        for j in (n - k) ..< n {
            let t = Int(UInt64.random(in: 0...UInt64(j), using: &generator))
            let pick = bitmap[t >> 6] & (1 << UInt64(t & 63)) != 0 ? j : t
            bitmap[pick >> 6] |= 1 << UInt64(pick & 63)
        }
        var result = [Int]()
        result.reserveCapacity(k)
        for (w, word) in bitmap.enumerated() {
            var bits = word
            while bits != 0 {
                result.append(w << 6 | bits.trailingZeroBitCount)
                bits &= bits - 1
            }
        }
        return result
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                       into coefficients: UnsafeMutableBufferPointer<Float>) throws {
        for (j, i) in indices(elements: values.count, key: key).enumerated() {
            guard values[i].isFinite else {
                throw CompressorError.nonFiniteInput(method: "randomk", tensor: key.tensor, detail: "element \(i) is \(values[i])")
            }
            coefficients[j] = values[i]
        }
    }

    public func decode(_ coefficients: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                       into output: UnsafeMutableBufferPointer<Float>) {
        let n = output.count
        let scale: Float = unbiased && coefficients.count > 0 ? Float(n) / Float(coefficients.count) : 1
        output.update(repeating: 0)
        for (j, i) in indices(elements: n, key: key).enumerated() { output[i] = scale * coefficients[j] }
    }
}

extension RandomK {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "randomk",
        summary: "Random-K: `ratio` of the values at positions drawn from the shared seed, all-reduced (error feedback, or unbiased scaling)",
        options: [ReducerOption("ratio", .number(1e-9...1), default: "0.01"), ReducerOption("unbiased", .flag, default: "false"),
                  .feedback(default: "ef; none when unbiased"), .seed]) { o, seed in
        let unbiased = try o.bool("unbiased")
        let r = try RandomK(ratio: try o.double("ratio"), unbiased: unbiased, seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF))
        let feedback = try o.choice("feedback", default: unbiased ? "none" : "ef")
        guard !(unbiased && feedback != "none") else {
            throw GradientCompressionError.invalidOption("randomk: unbiased=true must not be combined with error feedback (ALGORITHMS.md §5.4)")
        }
        return try ErrorFeedback.wrapping(AllReduceReducer(r), feedback)
    }
}
