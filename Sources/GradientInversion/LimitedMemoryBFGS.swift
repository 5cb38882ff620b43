/// L-BFGS (Nocedal & Wright 2006, Algorithms 7.4–7.5), the optimizer of the DLG paper, with a
/// backtracking Armijo line search (c₁ = 1e-4, halving) where PyTorch's DLG code takes fixed unit
/// steps, so every accepted step decreases the matching loss. The history (s, y) is kept in
/// Double; evaluations in Float.
struct LimitedMemoryBFGS {
    /// Curvature pairs kept (PyTorch's default).
    var history = 100
    /// Objective evaluations allowed, line-search trials included.
    var evaluations: Int

    /// Minimizes `objective` from `start`; returns the last accepted point and its value.
    func minimize(_ start: [Float], _ objective: ([Float]) -> (value: Float, gradient: [Float])) -> (point: [Float], value: Float) {
        var x = start
        var (fx, g) = objective(x)
        var used = 1
        var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
        var firstStep = true
        func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        while used < evaluations, fx.isFinite, g.allSatisfy(\.isFinite) {
            let gradient = g.map(Double.init)
            guard gradient.contains(where: { abs($0) > 1e-12 }) else { break }
            // Two-loop recursion: d = −H·g with H the implicit inverse-Hessian estimate.
            var q = gradient
            var alpha = [Double](repeating: 0, count: s.count)
            for i in s.indices.reversed() {
                alpha[i] = rho[i] * dot(s[i], q)
                for j in q.indices { q[j] -= alpha[i] * y[i][j] }
            }
            let gamma = s.isEmpty ? 1 : dot(s.last!, y.last!) / dot(y.last!, y.last!)
            var r = q.map { $0 * gamma }
            for i in s.indices {
                let beta = rho[i] * dot(y[i], r)
                for j in r.indices { r[j] += s[i][j] * (alpha[i] - beta) }
            }
            var direction = r.map { -$0 }
            var slope = dot(gradient, direction)
            if !(slope < 0) {
                // Not a descent direction (rounding in the history): restart from steepest descent.
                s.removeAll(); y.removeAll(); rho.removeAll()
                direction = gradient.map { -$0 }
                slope = -dot(gradient, gradient)
            }
            // The first step is scaled to at most unit length in ℓ1, as PyTorch does.
            var t = firstStep ? min(1, 1 / gradient.reduce(0) { $0 + abs($1) }) : 1
            var accepted: (x: [Float], value: Float, gradient: [Float])? = nil
            while used < evaluations, t > 1e-20 {
                let candidate = x.indices.map { x[$0] + Float(t * direction[$0]) }
                let (value, candidateGradient) = objective(candidate)
                used += 1
                if value.isFinite, Double(value) <= Double(fx) + 1e-4 * t * slope {
                    accepted = (candidate, value, candidateGradient)
                    break
                }
                t *= 0.5
            }
            guard let accepted else { break }
            let step = accepted.x.indices.map { Double(accepted.x[$0]) - Double(x[$0]) }
            let change = accepted.gradient.indices.map { Double(accepted.gradient[$0]) - gradient[$0] }
            let curvature = dot(step, change)
            // Keep the pair only with positive curvature (relative, so tiny gradients still qualify).
            if curvature > 1e-10 * (dot(change, change) * dot(step, step)).squareRoot() {
                s.append(step); y.append(change); rho.append(1 / curvature)
                if s.count > history { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
            }
            (x, fx, g) = (accepted.x, accepted.value, accepted.gradient)
            firstStep = false
        }
        return (x, fx)
    }
}
