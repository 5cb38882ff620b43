import Foundation
import Testing
@testable import Privacy

/// The RDP accountant against Opacus 1.6.0 (PyTorch peer venv, float64). Reference values from
///   ~/.venvs/peers/bin/python -c 'from opacus.accountants import RDPAccountant as A; a = A();
///     a.history = [(sigma, q, steps)]; print(a.get_privacy_spent(delta=delta))'
///   (and opacus.accountants.analysis.rdp.compute_rdp(q=, noise_multiplier=, steps=1, orders=α) for
///   single orders; opacus.accountants.utils.get_noise_multiplier(..., epsilon_tolerance=1e-4) for σ).
/// Tolerance: 1e-9 relative for ε and RDP (both sides are the same float64 formulas; the only
/// difference is log erfc, Opacus's scipy log_ndtr against glibc erfc here).
@Suite struct AccountantTests {
    struct Reference: Sendable, CustomStringConvertible {
        var q: Double, sigma: Double, steps: Int, delta: Double, epsilon: Double, order: Double
        var description: String { "q=\(q) σ=\(sigma) T=\(steps) δ=\(delta)" }
    }

    static let references: [Reference] = [
        // Fashion-MNIST at batch 256 for 60 epochs (235 steps each).
        Reference(q: 256.0 / 60000, sigma: 1.1, steps: 60 * 235, delta: 1e-5, epsilon: 2.6003429386103023, order: 8.1),
        Reference(q: 0.01, sigma: 1.0, steps: 1000, delta: 1e-5, epsilon: 2.1013652716430564, order: 7.8),
        Reference(q: 0.004, sigma: 0.8, steps: 5000, delta: 1e-6, epsilon: 3.392487653680443, order: 6.0),
        Reference(q: 0.1, sigma: 2.0, steps: 100, delta: 1e-5, epsilon: 2.5805688086608938, order: 7.6),
        Reference(q: 1.0, sigma: 5.0, steps: 10, delta: 1e-5, epsilon: 2.8136532471298397, order: 7.9),
        Reference(q: 0.02, sigma: 0.5, steps: 50, delta: 1e-3, epsilon: 6.121422649889634, order: 2.2),
    ]

    @Test(arguments: references)
    func epsilonMatchesOpacus(_ r: Reference) {
        let curve = RDPAccountant.rdp(sampleRate: r.q, noise: r.sigma, steps: r.steps)
        let (epsilon, order) = RDPAccountant.epsilon(rdp: curve, delta: r.delta)
        #expect(abs(epsilon - r.epsilon) <= 1e-9 * r.epsilon, "ε \(epsilon) vs Opacus \(r.epsilon)")
        #expect(abs(order - r.order) < 1e-9)
    }

    /// Single orders, integer and fractional (the erfc series), against Opacus's `compute_rdp`.
    @Test func rdpAtSingleOrdersMatchesOpacus() {
        let cases: [(q: Double, sigma: Double, alpha: Double, rdp: Double)] = [
            (0.01, 1.1, 2.5, 0.00016207740933199663),
            (0.01, 1.1, 8.0, 0.0005840703355202467),
            (0.05, 0.7, 3.3, 0.07864728734929496),
            (0.05, 0.7, 32.0, 29.560692425982456),
            (0.2, 1.5, 1.1, 0.011258392869090788),
        ]
        for c in cases {
            let value = RDPAccountant.rdp(sampleRate: c.q, noise: c.sigma, order: c.alpha)
            #expect(abs(value - c.rdp) <= 1e-9 * c.rdp, "q=\(c.q) σ=\(c.sigma) α=\(c.alpha): \(value) vs \(c.rdp)")
        }
    }

    /// Balle et al.'s conversion is never looser than the classical one, and strictly tighter here.
    @Test func conversionIsTighterThanTheClassicalOne() {
        let curve = RDPAccountant.rdp(sampleRate: 0.01, noise: 1.0, steps: 1000)
        let tight = RDPAccountant.epsilon(rdp: curve, delta: 1e-5).epsilon
        let classical = RDPAccountant.classicalEpsilon(rdp: curve, delta: 1e-5)
        #expect(tight < classical - 0.1, "\(tight) vs classical \(classical)")
    }

    @Test func epsilonGrowsWithStepsAndSampleRateAndFallsWithNoise() {
        var previous = 0.0
        for steps in [1, 10, 100, 1000, 10000] {
            let e = RDPAccountant.epsilon(sampleRate: 0.01, noise: 1.0, steps: steps, delta: 1e-5)
            #expect(e > previous, "steps \(steps): \(e) after \(previous)")
            previous = e
        }
        previous = 0
        for q in [0.001, 0.005, 0.01, 0.05, 0.2, 1.0] {
            let e = RDPAccountant.epsilon(sampleRate: q, noise: 1.0, steps: 100, delta: 1e-5)
            #expect(e > previous, "q \(q): \(e) after \(previous)")
            previous = e
        }
        previous = .infinity
        for sigma in [0.6, 0.8, 1.0, 2.0, 4.0] {
            let e = RDPAccountant.epsilon(sampleRate: 0.01, noise: sigma, steps: 100, delta: 1e-5)
            #expect(e < previous)
            previous = e
        }
        #expect(RDPAccountant.epsilon(sampleRate: 0.01, noise: 0, steps: 1, delta: 1e-5) == .infinity)
        #expect(RDPAccountant.epsilon(sampleRate: 0, noise: 1, steps: 100, delta: 1e-5) == 0)
    }

    /// σ for a target ε: spends at most the target, a 1e-6 smaller σ spends more, and it agrees with
    /// Opacus's bisection (which stops at an ε within 1e-4 of the target, hence the 1e-3 tolerance on σ).
    @Test func inverseIsConsistentWithForwardAndOpacus() throws {
        let cases: [(epsilon: Double, q: Double, steps: Int, sigma: Double)] = [
            (3.0, 256.0 / 60000, 60 * 235, 1.0148048400878906),
            (1.0, 0.01, 1000, 1.513214111328125),
            (8.0, 0.004, 2500, 0.5451679229736328),
        ]
        for c in cases {
            let sigma = try RDPAccountant.noise(forEpsilon: c.epsilon, sampleRate: c.q, steps: c.steps, delta: 1e-5)
            let spent = RDPAccountant.epsilon(sampleRate: c.q, noise: sigma, steps: c.steps, delta: 1e-5)
            #expect(spent <= c.epsilon && spent > c.epsilon - 1e-3, "σ \(sigma) spends \(spent)")
            #expect(RDPAccountant.epsilon(sampleRate: c.q, noise: sigma * (1 - 2e-6), steps: c.steps, delta: 1e-5) > c.epsilon)
            #expect(abs(sigma - c.sigma) < 1e-3 * c.sigma, "σ \(sigma) vs Opacus \(c.sigma)")
        }
    }

    @Test func unreachableEpsilonIsAnErrorNamingTheBudget() {
        #expect(throws: PrivacyError.self) {
            try RDPAccountant.noise(forEpsilon: 0.05, sampleRate: 0.01, steps: 1000, delta: 1e-5)
        }
        do {
            _ = try RDPAccountant.noise(forEpsilon: 0.05, sampleRate: 0.01, steps: 1000, delta: 1e-5)
        } catch {
            #expect("\(error)".contains("epsilon=0.05 cannot be reached"))
        }
    }

    /// The account composes stretches of steps: two halves give the one-stretch ε, and a changed σ
    /// opens a new entry whose RDP adds.
    @Test func accountComposesAcrossStretches() {
        var whole = PrivacyAccount(delta: 1e-5)
        whole.record(sampleRate: 0.01, noise: 1.1, steps: 600)
        var split = PrivacyAccount(delta: 1e-5)
        for _ in 0..<600 { split.record(sampleRate: 0.01, noise: 1.1) }
        #expect(split.entries.count == 1 && split.steps == 600)
        #expect(split.epsilon == whole.epsilon)
        #expect(abs(whole.epsilon - RDPAccountant.epsilon(sampleRate: 0.01, noise: 1.1, steps: 600, delta: 1e-5)) < 1e-12)
        split.record(sampleRate: 0.01, noise: 2.0, steps: 100)
        #expect(split.entries.count == 2 && split.epsilon > whole.epsilon)
        #expect(PrivacyAccount(delta: 1e-5).epsilon == 0)
    }
}

@Suite struct SettingsTests {
    @Test func parsesBothFormsAndRejectsBadValuesByName() throws {
        let a = try DifferentialPrivacySettings.parse("noise=1.1,clip=1.0,delta=1e-5,placement=distributed,per-layer=true")
        #expect(a == DifferentialPrivacySettings(noise: .multiplier(1.1), clip: 1, delta: 1e-5, placement: .distributed, perLayer: true))
        #expect(try DifferentialPrivacySettings.parse(a.specification) == a)
        let b = try DifferentialPrivacySettings.parse("epsilon=3,clip=0.5,delta=1e-5")
        #expect(b.noise == .targetEpsilon(3) && b.placement == .central && !b.perLayer)
        let bad: [(String, String)] = [
            ("noise=1,clip=0,delta=1e-5", "clip=0"), ("noise=1,clip=-1,delta=1e-5", "clip=-1"),
            ("noise=-0.5,clip=1,delta=1e-5", "noise=-0.5"), ("noise=1,clip=1,delta=1", "delta=1"),
            ("noise=1,clip=1", "delta="), ("clip=1,delta=1e-5", "noise="), ("noise=1,epsilon=2,clip=1,delta=1e-5", "epsilon=2"),
            ("noise=1,clip=1,delta=1e-5,placement=everywhere", "placement=everywhere"),
            ("noise=1,clip=1,delta=1e-5,sigma=2", "sigma=2"), ("noise=x,clip=1,delta=1e-5", "noise=x"),
        ]
        for (text, named) in bad {
            do {
                _ = try DifferentialPrivacySettings.parse(text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect("\(error)".hasPrefix(named), "\(text): \(error)")
            }
        }
    }

    @Test func deltaMustBeBelowOneOverTheDatasetSize() throws {
        let s = try DifferentialPrivacySettings.parse("noise=1,clip=1,delta=1e-3")
        #expect(throws: PrivacyError.self) { try s.resolvedNoise(sampleRate: 0.01, steps: 10, datasetSize: 1000) }
        #expect(try s.resolvedNoise(sampleRate: 0.01, steps: 10, datasetSize: 999) == 1)
    }

    /// Under local placement each worker's σ is the aggregate's over √W, so the released model spends the target.
    @Test func targetEpsilonResolvesPerPlacement() throws {
        let central = try DifferentialPrivacySettings.parse("epsilon=3,clip=1,delta=1e-5")
        let local = try DifferentialPrivacySettings.parse("epsilon=3,clip=1,delta=1e-5,placement=local")
        let s = try central.resolvedNoise(sampleRate: 0.01, steps: 500, datasetSize: 60000)
        let l = try local.resolvedNoise(sampleRate: 0.01, steps: 500, datasetSize: 60000,
                                        accountingFactor: NoisePlacement.local.aggregateNoise(1, workers: 4))
        #expect(abs(l * 2 - s) < 1e-12 * s)
        #expect(RDPAccountant.epsilon(sampleRate: 0.01, noise: NoisePlacement.local.aggregateNoise(l, workers: 4), steps: 500, delta: 1e-5) <= 3)
    }
}
