/// Why an attack could not run.
public enum InversionError: Error, CustomStringConvertible, Equatable {
    /// The model has a layer without a second-order pass, or does not fit the attack.
    case unsupportedModel(String)
    /// The observed message does not fit the model (tensor count or shapes).
    case observation(String)
    /// A setting out of range (iterations, batch size, …).
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let m): return "unsupported model: \(m)"
        case .observation(let m): return "observation: \(m)"
        case .invalidSetting(let m): return m
        }
    }
}
