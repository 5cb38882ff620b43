import LinearAlgebra

/// The optimizer of local SGD's outer step (DiLoCo, Douillard et al. 2023, ALGORITHMS.md §12.4):
/// it treats the averaged pseudo-gradient Δ = mean_w(θ₀ − θ_w) as a gradient of the round's
/// start parameters θ₀.
///
/// - `nesterov:lr=0.7,momentum=0.9` (DiLoCo's defaults): m ← μ·m + Δ; θ₀ ← θ₀ − lr·(Δ + μ·m).
///   Nesterov momentum on the outer step is what made DiLoCo match synchronous training with
///   H = 500 inner steps in the paper; it extrapolates along the rounds' common direction.
/// - `sgd:lr=1` (plain averaging, Lin et al. 2018's local SGD): θ₀ ← θ₀ − Δ = mean_w θ_w.
///   With `momentum=μ` > 0: m ← μ·m + Δ; θ₀ ← θ₀ − lr·m (heavy ball).
public struct OuterOptimizer: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, CaseIterable { case sgd, nesterov }

    public var kind: Kind
    public var learningRate: Float
    public var momentum: Float

    public init(kind: Kind, learningRate: Float, momentum: Float) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
    }

    /// DiLoCo's outer optimizer.
    public static let diloco = OuterOptimizer(kind: .nesterov, learningRate: 0.7, momentum: 0.9)
    /// Plain averaging of the workers' parameters.
    public static let averaging = OuterOptimizer(kind: .sgd, learningRate: 1, momentum: 0)

    /// Parses `nesterov:lr=0.7,momentum=0.9`, `sgd`, `sgd:lr=1,momentum=0.5`; unset options take
    /// the kind's defaults (nesterov 0.7 / 0.9, sgd 1 / 0). Throws naming what is wrong.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let kind = Kind(rawValue: first) else {
            throw OuterOptimizerError("unknown outer optimizer '\(text)': expected nesterov[:lr=L,momentum=M] or sgd[:lr=L,momentum=M]")
        }
        self = kind == .nesterov ? .diloco : .averaging
        guard parts.count == 2 else { return }
        for option in parts[1].split(separator: ",") {
            let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, let value = Float(pair[1]), value.isFinite else {
                throw OuterOptimizerError("outer optimizer option '\(option)' must be lr=<number> or momentum=<number>")
            }
            switch pair[0] {
            case "lr":
                guard value > 0 else { throw OuterOptimizerError("outer optimizer lr must be positive (got \(pair[1]))") }
                learningRate = value
            case "momentum":
                guard value >= 0, value < 1 else { throw OuterOptimizerError("outer optimizer momentum must be in [0, 1) (got \(pair[1]))") }
                momentum = value
            default:
                throw OuterOptimizerError("unknown outer optimizer option '\(pair[0])': expected lr or momentum")
            }
        }
    }

    public var description: String { "\(kind.rawValue):lr=\(learningRate),momentum=\(momentum)" }

    /// θ₀ ← θ₀ − step(Δ), with `buffer` the momentum m (created on first use).
    func apply(_ delta: [Tensor], to start: inout [Tensor], buffer: inout [Tensor]) {
        if momentum != 0, buffer.isEmpty { buffer = delta.map { Tensor(shape: $0.shape) } }
        for i in start.indices {
            delta[i].withUnsafeBufferPointer { d in
                start[i].withUnsafeMutableBufferPointer { theta in
                    if momentum == 0 {
                        for j in 0..<d.count { theta[j] -= learningRate * d[j] }
                        return
                    }
                    buffer[i].withUnsafeMutableBufferPointer { m in
                        for j in 0..<d.count {
                            m[j] = momentum * m[j] + d[j]
                            theta[j] -= learningRate * (kind == .nesterov ? d[j] + momentum * m[j] : m[j])
                        }
                    }
                }
            }
        }
    }
}

/// A malformed `--outer-optimizer`.
public struct OuterOptimizerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
