import Foundation

/// Rényi-DP accounting of the sampled Gaussian mechanism (SGM): Poisson sampling at rate q, a sum
/// of sensitivity 1, Gaussian noise of standard deviation σ (the noise multiplier). DP-SGD is T
/// compositions of it.
///
/// RDP of one SGM step at order α is log(A_α)/(α − 1) (Mironov, Talwar, Zhang 2019, "Rényi
/// differential privacy of the sampled Gaussian mechanism", §3.3): the exact binomial sum for
/// integer α and the two convergent series (with erfc) for fractional α — the computation of
/// TF-Privacy's `rdp_accountant` and Opacus's `accountants/analysis/rdp.py`, on Opacus's list of
/// orders. RDP composes by addition over steps.
///
/// Conversion to (ε, δ): Balle, Barthe, Gaboardi, Hsu, Sato 2020 ("Hypothesis testing
/// interpretations and Rényi differential privacy", Theorem 21), as Opacus does:
///   ε = min_α [ rdp(α) + log((α − 1)/α) − (log δ + log α)/(α − 1) ],
/// which is never larger than the classical ε = rdp(α) − log δ/(α − 1) (Mironov 2017, Prop. 3),
/// also given here (`classicalEpsilon`) for comparison.
public enum RDPAccountant {
    /// Opacus's default orders (`RDPAccountant.DEFAULT_ALPHAS`): 1.1, 1.2, …, 10.9, then 12, …, 63.
    public static let defaultOrders: [Double] = (1..<100).map { 1 + Double($0) / 10 } + (12..<64).map(Double.init)

    /// RDP of one step of the SGM at order `alpha` (> 1), for sampling rate `q` ∈ [0, 1] and noise
    /// multiplier `sigma` ≥ 0. Infinite when σ = 0 and q > 0.
    public static func rdp(sampleRate q: Double, noise sigma: Double, order alpha: Double) -> Double {
        if q == 0 { return 0 }
        if sigma == 0 { return .infinity }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        if alpha.isInfinite { return .infinity }
        let logA = alpha == alpha.rounded() ? logAIntegerOrder(q: q, sigma: sigma, alpha: Int(alpha))
                                            : logAFractionalOrder(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// RDP of `steps` compositions at each of `orders`.
    public static func rdp(sampleRate q: Double, noise sigma: Double, steps: Int, orders: [Double] = defaultOrders) -> [Double] {
        orders.map { rdp(sampleRate: q, noise: sigma, order: $0) * Double(steps) }
    }

    /// The (ε, δ) guarantee of an RDP curve by Balle et al. 2020 Thm 21, with the order that attains it.
    /// ε is infinite when every order's RDP is.
    public static func epsilon(rdp: [Double], orders: [Double] = defaultOrders, delta: Double) -> (epsilon: Double, order: Double) {
        precondition(rdp.count == orders.count, "one RDP value per order")
        // Zero RDP (no step, or q = 0) is 0-DP; the conversion below would still charge its
        // order-dependent constant (≈ 0.1 at δ = 1e-5).
        if rdp.allSatisfy({ $0 == 0 }) { return (0, orders.last ?? .nan) }
        var best = (epsilon: Double.infinity, order: Double.nan)
        for (value, alpha) in zip(rdp, orders) {
            let e = value + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
            if e.isFinite && e < best.epsilon { best = (e, alpha) }
        }
        // Below 0 the bound says nothing more than ε = 0.
        return (max(0, best.epsilon), best.order)
    }

    /// The classical conversion ε = min_α rdp(α) − log δ/(α − 1) (Mironov 2017, Prop. 3).
    public static func classicalEpsilon(rdp: [Double], orders: [Double] = defaultOrders, delta: Double) -> Double {
        zip(rdp, orders).map { $0 - log(delta) / ($1 - 1) }.filter(\.isFinite).min() ?? .infinity
    }

    /// ε after `steps` SGM steps at (q, σ) for `delta`.
    public static func epsilon(sampleRate q: Double, noise sigma: Double, steps: Int, delta: Double,
                               orders: [Double] = defaultOrders) -> Double {
        epsilon(rdp: rdp(sampleRate: q, noise: sigma, steps: steps, orders: orders), orders: orders, delta: delta).epsilon
    }

    /// The largest noise multiplier Opacus's search goes to (`MAX_SIGMA`).
    public static let largestNoise = 1e6

    /// The smallest σ whose ε after `steps` steps at rate `q` is at most `targetEpsilon`, by bisection
    /// to a relative width of 1e-6 (the upper end is returned, so the budget always holds).
    /// Throws `PrivacyError.unreachableEpsilon` when even σ = `largestNoise` spends more: the
    /// order list bounds ε from below by min_α [log((α−1)/α) − (log δ + log α)/(α−1)] however
    /// large σ is.
    public static func noise(forEpsilon targetEpsilon: Double, sampleRate q: Double, steps: Int, delta: Double,
                             orders: [Double] = defaultOrders) throws -> Double {
        let spent = { (sigma: Double) in epsilon(sampleRate: q, noise: sigma, steps: steps, delta: delta, orders: orders) }
        var high = 1.0
        while spent(high) > targetEpsilon {
            high *= 2
            if high > largestNoise {
                throw PrivacyError.unreachableEpsilon(target: targetEpsilon, smallest: spent(largestNoise),
                                                      sampleRate: q, steps: steps, delta: delta)
            }
        }
        var low = 0.0
        while high - low > 1e-6 * high {
            let mid = (low + high) / 2
            if spent(mid) > targetEpsilon { low = mid } else { high = mid }
        }
        return high
    }

    // MARK: - log A_α (Mironov, Talwar, Zhang 2019, §3.3)

    /// Integer α: A_α = Σ_{i=0}^{α} C(α, i) qⁱ (1 − q)^{α−i} exp((i² − i)/(2σ²)).
    static func logAIntegerOrder(q: Double, sigma: Double, alpha: Int) -> Double {
        var logA = -Double.infinity
        var logBinomial = 0.0  // log C(α, 0)
        for i in 0...alpha {
            if i > 0 { logBinomial += log(Double(alpha - i + 1)) - log(Double(i)) }
            let term = logBinomial + Double(i) * log(q) + Double(alpha - i) * log1p(-q)
                + Double(i * i - i) / (2 * sigma * sigma)
            logA = logAdd(logA, term)
        }
        return logA
    }

    /// Fractional α: A_α = A₀ + A₁, two series in i = 0, 1, … whose terms carry erfc factors; summed
    /// until both terms fall below e⁻³⁰, as the reference implementations do.
    static func logAFractionalOrder(q: Double, sigma: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        var logBinomial = 0.0  // log |C(α, i)|
        var positive = true    // sign of C(α, i)
        var i = 0
        while true {
            if i > 0 {
                let factor = (alpha - Double(i) + 1) / Double(i)
                logBinomial += log(abs(factor))
                if factor < 0 { positive.toggle() }
            }
            let di = Double(i), j = alpha - di
            let logT0 = logBinomial + di * log(q) + j * log1p(-q)
            let logT1 = logBinomial + j * log(q) + di * log1p(-q)
            let logE0 = log(0.5) + logErfc((di - z0) / (2.0.squareRoot() * sigma))
            let logE1 = log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * sigma))
            let logS0 = logT0 + (di * di - di) / (2 * sigma * sigma) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1
            if positive {
                logA0 = logAdd(logA0, logS0)
                logA1 = logAdd(logA1, logS1)
            } else {
                logA0 = logSubtract(logA0, logS0)
                logA1 = logSubtract(logA1, logS1)
            }
            i += 1
            if max(logS0, logS1) < -30 { break }
        }
        return logAdd(logA0, logA1)
    }

    static func logAdd(_ x: Double, _ y: Double) -> Double {
        let a = min(x, y), b = max(x, y)
        if a == -.infinity { return b }
        return log1p(exp(a - b)) + b
    }

    /// log(eˣ − eʸ) for x ≥ y; the series' alternating tail is far smaller than its head, so x < y
    /// cannot occur for the orders used here (the reference implementations raise there too).
    static func logSubtract(_ x: Double, _ y: Double) -> Double {
        precondition(x >= y, "log-space subtraction with a negative result")
        if y == -.infinity { return x }
        if x == y { return -.infinity }
        let d = expm1(x - y)
        return d.isInfinite ? x : log(d) + y
    }

    /// log erfc(x), accurate where erfc underflows: the asymptotic series
    /// erfc(x) ≈ e^{−x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸)) beyond x = 25,
    /// where its truncation error is below 1e-12 relative.
    static func logErfc(_ x: Double) -> Double {
        if x < 25 { return log(erfc(x)) }
        let inverse2 = 1 / (x * x)
        let series = 1 - inverse2 / 2 + 3 * inverse2 * inverse2 / 4 - 15 * pow(inverse2, 3) / 8 + 105 * pow(inverse2, 4) / 16
        return -x * x - log(x) - 0.5 * log(Double.pi) + log(series)
    }
}
