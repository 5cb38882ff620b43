#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A learning rate as a function of the optimizer step: an optional linear warm-up followed
/// by a decay rule. Steps are optimizer steps; a trainer converts epochs (×steps per epoch).
///
/// Warm-up (Goyal et al. 2017, used by the PowerSGD paper to scale the rate with the number
/// of workers): for step s < `warmupSteps` the rate goes linearly from
/// `warmupStartFactor`·base (at s = 0) towards base (reached at s = warmupSteps).
/// Decay then applies to the step count s (counted from 0, including the warm-up):
/// - `.constant`: base;
/// - `.step(milestones, factor)`: base·factorᵏ with k the number of milestones ≤ s;
/// - `.cosine(totalSteps, finalFactor)`: base·(f + (1 − f)·(1 + cos(π·min(s, T)/T))/2)
///   (SGDR without restarts, reaching f·base at T).
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Decay: Sendable, Equatable {
        case constant
        case step(milestones: [Int], factor: Float)
        case cosine(totalSteps: Int, finalFactor: Float)
    }

    public var base: Float
    public var warmupSteps: Int
    public var warmupStartFactor: Float
    public var decay: Decay

    public init(base: Float, warmupSteps: Int = 0, warmupStartFactor: Float = 0, decay: Decay = .constant) {
        self.base = base
        self.warmupSteps = warmupSteps
        self.warmupStartFactor = warmupStartFactor
        self.decay = decay
    }

    public static func constant(_ rate: Float) -> LearningRateSchedule { LearningRateSchedule(base: rate) }

    public func rate(at step: Int) -> Float {
        var rate = base
        switch decay {
        case .constant:
            break
        case let .step(milestones, factor):
            let passed = milestones.filter { step >= $0 }.count
            rate *= pow(factor, Float(passed))
        case let .cosine(total, finalFactor):
            let t = Float(min(step, total)) / Float(max(1, total))
            rate *= finalFactor + (1 - finalFactor) * (1 + cos(Float.pi * t)) / 2
        }
        if step < warmupSteps {
            let fraction = Float(step) / Float(warmupSteps)
            rate *= warmupStartFactor + (1 - warmupStartFactor) * fraction
        }
        return rate
    }
}
