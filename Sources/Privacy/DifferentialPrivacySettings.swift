import Foundation

/// Where the Gaussian noise of DP-SGD is added when W workers each hold a shard of the lot
/// (ALGORITHMS.md §8). The aggregate the optimizer applies is (Σ clipped + Σ noise) / B.
public enum NoisePlacement: String, Sendable, Codable, CaseIterable {
    /// Rank 0 adds N(0, σ²C²) once; the other ranks send their clipped sums un-noised. Protects the
    /// released model, not the workers' messages.
    case central
    /// Every worker adds N(0, σ²C²/W): the aggregate carries exactly σ²C². Each message alone is
    /// protected only at noise multiplier σ/√W; the sum (and so the model) at σ.
    case distributed
    /// Every worker adds N(0, σ²C²): each message is protected at σ on its own, and the aggregate
    /// carries W·σ²C² (the model is protected at σ√W).
    case local

    /// The variance each worker adds, in units of σ²C².
    public func workerVariance(rank: Int, workers: Int) -> Double {
        switch self {
        case .central: return rank == 0 ? 1 : 0
        case .distributed: return 1 / Double(workers)
        case .local: return 1
        }
    }

    /// The noise multiplier of the aggregate (what the released model's ε is accounted at).
    public func aggregateNoise(_ sigma: Double, workers: Int) -> Double {
        self == .local ? sigma * Double(workers).squareRoot() : sigma
    }
}

/// The `--dp` specification: `noise=1.1,clip=1.0,delta=1e-5[,placement=distributed][,per-layer=true]`
/// or `epsilon=3,clip=1.0,delta=1e-5` (σ is then found by `RDPAccountant.noise(forEpsilon:)`).
public struct DifferentialPrivacySettings: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum NoiseChoice: Sendable, Equatable, Codable {
        case multiplier(Double)
        case targetEpsilon(Double)
    }

    public var noise: NoiseChoice
    /// The per-example clipping norm C.
    public var clip: Double
    public var delta: Double
    public var placement: NoisePlacement
    /// Clip each parameter tensor's per-example gradient to C/√L (L tensors) instead of the whole
    /// gradient to C: the flat norm is then still at most C, so the sensitivity is unchanged.
    public var perLayer: Bool

    public init(noise: NoiseChoice, clip: Double, delta: Double, placement: NoisePlacement = .central, perLayer: Bool = false) {
        self.noise = noise
        self.clip = clip
        self.delta = delta
        self.placement = placement
        self.perLayer = perLayer
    }

    public static let keys = ["noise", "epsilon", "clip", "delta", "placement", "per-layer"]

    /// Parses the `--dp` value; errors name the key (`PrivacyError.invalidOption`).
    public static func parse(_ text: String) throws -> DifferentialPrivacySettings {
        var values: [String: String] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[1].isEmpty else {
                throw PrivacyError.invalidOption(name: String(item), value: "", reason: "expected key=value (keys: \(keys.joined(separator: ", ")))")
            }
            guard keys.contains(pair[0]) else {
                throw PrivacyError.invalidOption(name: pair[0], value: pair[1], reason: "unknown key (keys: \(keys.joined(separator: ", ")))")
            }
            guard values[pair[0]] == nil else {
                throw PrivacyError.invalidOption(name: pair[0], value: pair[1], reason: "given twice")
            }
            values[pair[0]] = pair[1]
        }
        func number(_ key: String) throws -> Double? {
            guard let text = values[key] else { return nil }
            guard let v = Double(text), v.isFinite else {
                throw PrivacyError.invalidOption(name: key, value: text, reason: "not a finite number")
            }
            return v
        }
        let noise: NoiseChoice
        switch (try number("noise"), try number("epsilon")) {
        case let (sigma?, nil):
            guard sigma >= 0 else { throw PrivacyError.invalidOption(name: "noise", value: values["noise"]!, reason: "the noise multiplier must be ≥ 0") }
            noise = .multiplier(sigma)
        case let (nil, epsilon?):
            guard epsilon > 0 else { throw PrivacyError.invalidOption(name: "epsilon", value: values["epsilon"]!, reason: "the target ε must be > 0") }
            noise = .targetEpsilon(epsilon)
        case (nil, nil):
            throw PrivacyError.invalidOption(name: "noise", value: "", reason: "give noise=σ or epsilon=ε")
        case (_?, _?):
            throw PrivacyError.invalidOption(name: "epsilon", value: values["epsilon"]!, reason: "give noise=σ or epsilon=ε, not both")
        }
        guard let clip = try number("clip") else {
            throw PrivacyError.invalidOption(name: "clip", value: "", reason: "the clipping norm C is required")
        }
        guard clip > 0 else { throw PrivacyError.invalidOption(name: "clip", value: values["clip"]!, reason: "the clipping norm must be > 0") }
        guard let delta = try number("delta") else {
            throw PrivacyError.invalidOption(name: "delta", value: "", reason: "δ is required")
        }
        guard delta > 0 && delta < 1 else { throw PrivacyError.invalidOption(name: "delta", value: values["delta"]!, reason: "δ must be in (0, 1)") }
        var placement = NoisePlacement.central
        if let p = values["placement"] {
            guard let parsed = NoisePlacement(rawValue: p) else {
                throw PrivacyError.invalidOption(name: "placement", value: p, reason: "expected central, distributed or local")
            }
            placement = parsed
        }
        var perLayer = false
        if let p = values["per-layer"] {
            guard let parsed = Bool(p) else { throw PrivacyError.invalidOption(name: "per-layer", value: p, reason: "expected true or false") }
            perLayer = parsed
        }
        return DifferentialPrivacySettings(noise: noise, clip: clip, delta: delta, placement: placement, perLayer: perLayer)
    }

    public var description: String { specification }

    /// The `--dp` text that parses back to these settings (recorded in checkpoints and logs).
    public var specification: String {
        let noiseText: String
        switch noise {
        case let .multiplier(s): noiseText = "noise=\(s)"
        case let .targetEpsilon(e): noiseText = "epsilon=\(e)"
        }
        return "\(noiseText),clip=\(clip),delta=\(delta),placement=\(placement.rawValue),per-layer=\(perLayer)"
    }

    /// The noise multiplier σ for a run of `steps` steps at sample rate `q` over `datasetSize`
    /// examples: the given one, or the smallest that meets the target ε when the accountant
    /// charges `accountingFactor`·σ per step (the placement's and reducer's effect,
    /// `NoisePlacement.aggregateNoise`). Checks δ < 1/N, the usual requirement (a larger δ allows
    /// releasing an example outright).
    public func resolvedNoise(sampleRate q: Double, steps: Int, datasetSize: Int, accountingFactor: Double = 1) throws -> Double {
        guard delta < 1 / Double(datasetSize) else {
            throw PrivacyError.invalidOption(name: "delta", value: "\(delta)",
                                             reason: "δ must be below 1/N = \(1 / Double(datasetSize)) for the \(datasetSize) training examples")
        }
        switch noise {
        case let .multiplier(s): return s
        case let .targetEpsilon(e):
            return try RDPAccountant.noise(forEpsilon: e, sampleRate: q, steps: steps, delta: delta) / accountingFactor
        }
    }
}
