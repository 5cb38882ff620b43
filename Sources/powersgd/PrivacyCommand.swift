import ArgumentParser
import Foundation
import Privacy

/// `powersgd privacy`: the (ε, δ) that DP-SGD spends, or the noise a budget needs, without training.
struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "privacy",
        abstract: "ε of T steps of the subsampled Gaussian mechanism (RDP accountant, Balle et al. 2020 conversion), or with --epsilon the noise multiplier σ that spends it.")

    @Option(help: "Poisson sampling rate q of each lot (expected lot size / training examples), in (0, 1].")
    var sampleRate: Double

    @Option(help: "Noise multiplier σ (noise standard deviation / clipping norm), ≥ 0. Give this or --epsilon.")
    var noise: Double?

    @Option(help: "Target ε: prints the smallest σ whose ε after --steps steps is at most this. Give this or --noise.")
    var epsilon: Double?

    @Option(help: "Number of DP-SGD steps.")
    var steps: Int

    @Option(help: "δ of the (ε, δ) guarantee, in (0, 1) (below 1/N for N training examples).")
    var delta: Double

    @Flag(help: "Print JSON instead of a sentence.")
    var json = false

    func validate() throws {
        guard sampleRate > 0, sampleRate <= 1 else { throw ValidationError("--sample-rate must be in (0, 1] (got \(sampleRate))") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1) (got \(delta))") }
        switch (noise, epsilon) {
        case (nil, nil): throw ValidationError("give --noise σ (prints ε) or --epsilon ε (prints σ)")
        case (_?, _?): throw ValidationError("--noise and --epsilon are both given: give one")
        case let (sigma?, nil):
            guard sigma >= 0, sigma.isFinite else { throw ValidationError("--noise must be 0 or more (got \(sigma))") }
        case let (nil, target?):
            guard target > 0, target.isFinite else { throw ValidationError("--epsilon must be positive (got \(target))") }
        }
    }

    struct Report: Encodable {
        var sampleRate: Double
        var noise: Double
        var steps: Int
        var delta: Double
        var epsilon: Double
        var order: Double
        var conversion = "Balle et al. 2020, Thm 21 (as Opacus)"
    }

    func run() throws {
        let sigma: Double
        if let target = epsilon {
            do { sigma = try RDPAccountant.noise(forEpsilon: target, sampleRate: sampleRate, steps: steps, delta: delta) } catch {
                throw ValidationError("--epsilon: \(error)")
            }
        } else {
            sigma = noise!
        }
        let curve = RDPAccountant.rdp(sampleRate: sampleRate, noise: sigma, steps: steps)
        let spent = RDPAccountant.epsilon(rdp: curve, delta: delta)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(Report(sampleRate: sampleRate, noise: sigma, steps: steps, delta: delta,
                                                             epsilon: spent.epsilon, order: spent.order)), as: UTF8.self))
        } else if epsilon != nil {
            print(String(format: "noise multiplier σ = %.6f spends ε = %.4f at δ = %g after %d steps at sample rate %g (RDP order %g)",
                         sigma, spent.epsilon, delta, steps, sampleRate, spent.order))
        } else {
            print(String(format: "ε = %.4f at δ = %g after %d steps at sample rate %g with noise multiplier %g (RDP order %g)",
                         spent.epsilon, delta, steps, sampleRate, sigma, spent.order))
        }
    }
}
