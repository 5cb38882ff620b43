/// Why a privacy setting cannot be used. Every case names the option at fault.
public enum PrivacyError: Error, CustomStringConvertible, Equatable {
    /// No noise multiplier up to `RDPAccountant.largestNoise` spends at most `target`.
    case unreachableEpsilon(target: Double, smallest: Double, sampleRate: Double, steps: Int, delta: Double)
    /// An option of `--dp` (or of `powersgd privacy`) with a value outside its range.
    case invalidOption(name: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .unreachableEpsilon(target, smallest, q, steps, delta):
            return "epsilon=\(target) cannot be reached: \(steps) steps at sample rate \(q) spend at least ε = "
                + "\(smallest) at delta=\(delta) whatever the noise (up to σ = \(RDPAccountant.largestNoise)); "
                + "ask for a larger epsilon, fewer steps or a smaller sample rate"
        case let .invalidOption(name, value, reason):
            return "\(name)=\(value): \(reason)"
        }
    }
}
