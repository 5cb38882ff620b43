/// Builds this folder's reducers from their names and options (`ReducerSpecification`, e.g.
/// `qsgd:levels=64,bucket=512` or `topk:ratio=0.01,scope=global`); unknown options are errors
/// naming the accepted ones. Options and defaults are listed in docs/compressors.md.
public enum CompressorCatalog {
    /// The reducer names this catalog builds.
    public static let names = ["qsgd", "terngrad", "atomo", "onebit", "signsgd", "signum", "scaled-sign",
                               "topk", "randomk", "dgc", "fp16", "bf16"]

    /// The reducer for `specification`, or nil when the name is not one of `names`.
    public static func reducer(for specification: ReducerSpecification, seed: UInt64 = 0) throws -> (any GradientReducer)? {
        guard names.contains(specification.name) else { return nil }
        var o = ReducerOptionReader(specification)
        let result = try make(specification.name, &o, seed: seed)
        try o.finish()
        return result
    }

    /// The reducer `name` (one of `names`) with options read from `o` (the caller calls `o.finish()`);
    /// `seed` is the default of the `seed` option. The shape of a `ReducerCatalog` entry's closure.
    public static func make(_ name: String, _ o: inout ReducerOptionReader, seed defaultSeed: UInt64) throws -> any GradientReducer {
        let seedDefault = Int(truncatingIfNeeded: defaultSeed & 0x7FFF_FFFF_FFFF_FFFF)
        let result: any GradientReducer
        switch name {
        case "qsgd":
            let q = try QSGD(levels: try o.int("levels", default: 64, in: 1...(1 << 24)),
                             bucketSize: try o.int("bucket", default: 512, in: 1...Int(Int32.max)),
                             scaling: QSGD.Scaling(rawValue: try o.choice("norm", default: "l2", among: ["l2", "max"]))!,
                             format: QSGD.Format(rawValue: try o.choice("format", default: "elias", among: ["elias", "fixed"]))!,
                             seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
            result = try withFeedback(AllGatherReducer(q), try o.choice("feedback", default: "none", among: feedbackChoices))
        case "terngrad":
            let t = try TernGrad(clip: Float(try o.double("clip", default: 2.5, in: 0...1e6)),
                                 seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
            result = AllGatherReducer(t)
        case "atomo":
            let a = try ATOMO(budget: try o.double("budget", default: 2, in: 1e-6...1e9), seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
            result = AllGatherReducer(a)
        case "onebit":
            result = try withFeedback(AllGatherReducer(OneBitSGD()), try o.choice("feedback", default: "ef", among: feedbackChoices))
        case "signsgd":
            result = try MajorityVoteReducer(momentum: 0)
        case "signum":
            result = try MajorityVoteReducer(momentum: Float(try o.double("momentum", default: 0.9, in: 0...0.999999)))
        case "scaled-sign":
            result = try withFeedback(AllGatherReducer(SignCompressor(scaling: .meanMagnitude)),
                                      try o.choice("feedback", default: "ef", among: feedbackChoices))
        case "topk":
            let t = try TopK(ratio: try o.double("ratio", default: 0.01, in: 1e-9...1),
                             selection: TopK.Selection(rawValue: try o.choice("selection", default: "exact", among: ["exact", "sampled"]))!,
                             seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
            let scope: AllGatherReducer<TopK>.Scope = try o.choice("scope", default: "tensor", among: ["tensor", "global"]) == "global" ? .global : .perTensor
            result = try withFeedback(AllGatherReducer(t, scope: scope), try o.choice("feedback", default: "ef", among: feedbackChoices))
        case "randomk":
            let unbiased = try o.bool("unbiased", default: false)
            let r = try RandomK(ratio: try o.double("ratio", default: 0.01, in: 1e-9...1), unbiased: unbiased,
                                seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
            let feedback = try o.choice("feedback", default: unbiased ? "none" : "ef", among: feedbackChoices)
            guard !(unbiased && feedback != "none") else {
                throw GradientCompressionError.invalidOption("randomk: unbiased=true must not be combined with error feedback (ALGORITHMS.md §5.4)")
            }
            result = try withFeedback(AllReduceReducer(r), feedback)
        case "dgc":
            result = try DeepGradientCompression(
                density: try o.double("density", default: 0.001, in: 1e-9...1),
                momentum: Float(try o.double("momentum", default: 0.9, in: 0...0.999999)),
                nesterov: try o.bool("nesterov", default: false),
                maskMomentum: try o.bool("mask-momentum", default: true),
                warmupEpochs: try o.int("warmup-epochs", default: 4, in: 0...1000),
                stepsPerEpoch: try o.int("steps-per-epoch", default: 0, in: 0...Int.max),
                denseBelow: try o.int("dense-below", default: 0, in: 0...Int.max),
                seed: UInt64(try o.int("seed", default: seedDefault, in: 0...Int.max)))
        case "fp16", "bf16":
            result = AllReduceReducer(HalfPrecisionCompressor(name == "fp16" ? .fp16 : .bf16))
        default:
            throw GradientCompressionError.invalidOption("unknown reducer '\(name)'; this catalog builds \(names.joined(separator: ", "))")
        }
        return result
    }

    static let feedbackChoices = ["none", "ef", "ef21"]

    static func withFeedback<R: CompressedAveraging>(_ reducer: R, _ choice: String) throws -> any GradientReducer {
        switch choice {
        case "ef": return try ErrorFeedback(reducer, mode: .classic)
        case "ef21": return try ErrorFeedback(reducer, mode: .ef21)
        default: return reducer
        }
    }
}
