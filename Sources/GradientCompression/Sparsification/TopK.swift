import LinearAlgebra

/// Top-K sparsification (ALGORITHMS.md §5.4): send the k = max(1, ⌊ratio·n⌋) entries of largest
/// magnitude as (fp32 value, int32 index) pairs, 8k bytes. Biased; use it inside `ErrorFeedback`.
/// Per tensor by default; `AllGatherReducer(scope: .global)` makes it global Top-K.
public struct TopK: Compressor {
    public enum Selection: String, Sendable { case exact, sampled }

    public let ratio: Double
    public let selection: Selection
    /// The fraction of elements in the threshold-estimation sample (`.sampled`).
    public let sampleRatio: Double
    public let seed: UInt64

    public init(ratio: Double, selection: Selection = .exact, sampleRatio: Double = 0.01, seed: UInt64 = 0) throws {
        guard ratio > 0, ratio <= 1 else { throw GradientCompressionError.invalidOption("topk: ratio=\(ratio) must be in (0, 1]") }
        guard sampleRatio > 0, sampleRatio <= 1 else {
            throw GradientCompressionError.invalidOption("topk: sample=\(sampleRatio) must be in (0, 1]")
        }
        self.ratio = ratio
        self.selection = selection
        self.sampleRatio = sampleRatio
        self.seed = seed
    }

    /// `feedback=none` because the catalog's `topk` runs with error feedback unless told otherwise
    /// (`ErrorFeedback` names its own mode).
    public var name: String {
        ReducerSpecification.reducerName("topk", [("ratio", "\(ratio)"), ("selection", selection.rawValue), ("feedback", "none")])
    }

    public func fixedMessageBytes(shape: [Int]) -> Int? {
        SparseMessage.bytes(count: sparseCount(ratio: ratio, elements: Tensor.elementCount(shape)))
    }

    /// The selected indices (ascending).
    public func select(_ values: UnsafeBufferPointer<Float>, key: CompressionKey) -> [Int32] {
        let k = sparseCount(ratio: ratio, elements: values.count)
        switch selection {
        case .exact: return TopKSelection.exact(values, k: k)
        case .sampled:
            var generator = key.workerGenerator(seed: seed)
            return TopKSelection.sampled(values, k: k, sampleRatio: sampleRatio, generator: &generator)
        }
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        guard values.count <= Int(Int32.max) else {
            throw GradientCompressionError.invalidOption("topk: tensor \(key.tensor) has \(values.count) elements, more than int32 indices address")
        }
        let indices = select(values, key: key)
        // Non-finite values have the largest keys, so any NaN/Inf in the input is among the selected.
        for i in indices where !values[Int(i)].isFinite {
            throw CompressorError.nonFiniteInput(method: "topk", tensor: key.tensor, detail: "element \(i) is \(values[Int(i)])")
        }
        return SparseMessage.encode(values, indices: indices)
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try SparseMessage.decode(message, count: sparseCount(ratio: ratio, elements: output.count), context: "Top-K",
                                 shape: shape, weight: weight, accumulatingInto: output)
    }
}

extension TopK {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "topk",
        summary: "Top-K: the `ratio` largest-magnitude values per tensor (or globally) as index-value pairs, with error feedback, all-gathered",
        options: [ReducerOption("ratio", .number(1e-9...1), default: "0.01"),
                  ReducerOption("selection", .choice(["exact", "sampled"]), default: "exact"),
                  ReducerOption("scope", .choice(["tensor", "global"]), default: "tensor"),
                  .feedback(default: "ef"), .seed]) { o, seed in
        let t = try TopK(ratio: try o.double("ratio"), selection: Selection(rawValue: try o.choice("selection"))!,
                         seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF))
        let scope: AllGatherReducer<TopK>.Scope = try o.choice("scope") == "global" ? .global : .perTensor
        return try ErrorFeedback.wrapping(AllGatherReducer(t, scope: scope), try o.choice("feedback"))
    }
}
