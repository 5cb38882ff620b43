import Foundation
import LinearAlgebra

/// The observer's view of one worker's gradient: one tensor per parameter, and optionally which
/// coordinates were transmitted (a sparsifier's support) — matching then ignores the others —
/// or, per tensor, the projection Π onto what the messages determine (`LowRankObservation`):
/// the tensor is then Π(M), and matching compares Π(g) with it.
public struct ObservedGradient {
    public var tensors: [[Float]]
    public var transmitted: [[Bool]]?
    public var projections: [LowRankObservation?]?

    public init(tensors: [[Float]], transmitted: [[Bool]]? = nil, projections: [LowRankObservation?]? = nil) {
        self.tensors = tensors
        self.transmitted = transmitted
        self.projections = projections
    }
}

/// How far a dummy gradient g is from the observed o, and ∂D/∂g.
public enum GradientDistance: String, Sendable {
    /// DLG: Σ (g − o)².
    case squaredEuclidean
    /// Inverting Gradients: 1 − ⟨g, o⟩ / (‖g‖‖o‖) over all tensors together.
    case cosine

    public func valueAndDirection(_ dummy: [[Float]], _ observed: ObservedGradient) -> (value: Float, direction: [[Float]]) {
        guard let projections = observed.projections else { return unprojected(dummy, observed) }
        // D(Π(g), o): Π is self-adjoint, so ∂D/∂g = Π(∂D/∂Π(g)).
        let projected = dummy.indices.map { projections[$0]?.project(dummy[$0]) ?? dummy[$0] }
        let (value, direction) = unprojected(projected, observed)
        return (value, direction.indices.map { projections[$0]?.project(direction[$0]) ?? direction[$0] })
    }

    private func unprojected(_ g: [[Float]], _ observed: ObservedGradient) -> (value: Float, direction: [[Float]]) {
        let o = observed.tensors
        func kept(_ t: Int, _ i: Int) -> Bool { observed.transmitted?[t][i] ?? true }
        switch self {
        case .squaredEuclidean:
            var value: Float = 0
            let direction = g.indices.map { t in
                g[t].indices.map { i -> Float in
                    guard kept(t, i) else { return 0 }
                    let d = g[t][i] - o[t][i]
                    value += d * d
                    return 2 * d
                }
            }
            return (value, direction)
        case .cosine:
            var dot: Double = 0, gg: Double = 0, oo: Double = 0
            for t in g.indices { for i in g[t].indices where kept(t, i) {
                dot += Double(g[t][i]) * Double(o[t][i]); gg += Double(g[t][i] * g[t][i]); oo += Double(o[t][i] * o[t][i])
            } }
            let gn = max(gg.squareRoot(), 1e-30), on = max(oo.squareRoot(), 1e-30)
            let value = 1 - dot / (gn * on)
            let a = Float(-1 / (gn * on)), b = Float(dot / (gn * gn * gn * on))
            let direction = g.indices.map { t in
                g[t].indices.map { i -> Float in kept(t, i) ? a * o[t][i] + b * g[t][i] : 0 }
            }
            return (Float(value), direction)
        }
    }
}

/// The shape and value range of the attacked inputs: images `[C, H, W]` after the dataset's
/// normalization, whose pixels lie in [lower_c, upper_c] (the normalized 0 and 1).
public struct InputDomain: Sendable {
    public var channels: Int, height: Int, width: Int
    public var lower: [Float], upper: [Float]
    public var size: Int { channels * height * width }

    public init(channels: Int, height: Int, width: Int, lower: [Float], upper: [Float]) {
        self.channels = channels; self.height = height; self.width = width
        self.lower = lower; self.upper = upper
    }
}

/// Gradient matching: optimize dummy inputs (and for DLG dummy soft labels) until their gradient
/// matches the observed one, with the exact second-order derivatives of `GradientMap`.
public struct OptimizationAttack: Sendable {
    public enum Method: String, Sendable { case dlg, inverting }
    /// Adam (Inverting Gradients; DLG here by default) or L-BFGS (the DLG paper's optimizer).
    public enum Optimizer: String, Sendable, CaseIterable { case adam, lbfgs }

    public var method: Method
    public var iterations: Int
    public var learningRate: Float
    /// Independent random starts; the one with the lowest final objective is kept.
    public var restarts: Int
    /// Weight of the total-variation prior (Inverting Gradients only).
    public var totalVariation: Float
    /// Adam on the sign of the gradient (Inverting Gradients' choice).
    public var signedGradients: Bool
    public var seed: UInt64
    /// With `.lbfgs`, `iterations` counts objective evaluations (line-search trials included).
    public var optimizer: Optimizer = .adam

    /// DLG (Zhu et al. 2019): squared distance, soft labels learned jointly, no prior, no box;
    /// Adam with learning rate 0.1, or Zhu et al.'s L-BFGS (see docs/privacy.md).
    public static func dlg(iterations: Int = 300, optimizer: Optimizer = .adam, seed: UInt64 = 0) -> OptimizationAttack {
        var attack = OptimizationAttack(method: .dlg, iterations: iterations, learningRate: 0.1, restarts: 1, totalVariation: 0,
                                        signedGradients: false, seed: seed)
        attack.optimizer = optimizer
        return attack
    }

    /// Inverting Gradients (Geiping et al. 2020): cosine distance, TV prior, signed Adam with
    /// step decay at 3/8, 5/8, 7/8 of the iterations, inputs kept inside the pixel box, labels
    /// given (here: recovered by `AnalyticAttack.recoverLabels`).
    public static func inverting(iterations: Int = 300, restarts: Int = 1, totalVariation: Float = 1e-4, seed: UInt64 = 0) -> OptimizationAttack {
        OptimizationAttack(method: .inverting, iterations: iterations, learningRate: 0.1, restarts: restarts,
                           totalVariation: totalVariation, signedGradients: true, seed: seed)
    }

    public struct Result: Sendable {
        /// `[B, C, H, W]`, normalized like the model's inputs.
        public var inputs: [Float]
        public var labels: [Int]
        /// The final objective (matching distance + prior) of the kept restart.
        public var objective: Float
    }

    /// `labels`: the labels to use (Inverting Gradients); DLG ignores them and learns its own.
    /// `start`: the first restart's dummy inputs (e.g. the analytic attack's candidates) instead of
    /// a random draw; later restarts draw theirs.
    public func run(_ network: GradientMap, observed: ObservedGradient, batch: Int, domain: InputDomain,
                    labels: [Int]?, start initial: [Float]? = nil) throws -> Result {
        guard iterations >= 1, restarts >= 1, batch >= 1 else {
            throw InversionError.invalidSetting("iterations, restarts and batch size must be at least 1")
        }
        guard domain.size == network.inputSize else {
            throw InversionError.observation("inputs of \(domain.size) values for a network taking \(network.inputSize)")
        }
        guard observed.tensors.map(\.count) == network.parameterShapes.map({ $0.reduce(1, *) }) else {
            throw InversionError.observation("the observed gradient has tensors of \(observed.tensors.map(\.count)) values; "
                                             + "the model's are \(network.parameterShapes)")
        }
        if method == .inverting, labels?.count != batch {
            throw InversionError.invalidSetting("Inverting Gradients needs one label per example")
        }
        if method == .inverting, optimizer == .lbfgs {
            throw InversionError.invalidSetting("L-BFGS is for DLG; Inverting Gradients uses signed Adam inside the pixel box")
        }
        if let initial, initial.count != batch * domain.size {
            throw InversionError.invalidSetting("a start of \(initial.count) values for \(batch) inputs of \(domain.size)")
        }
        let distance: GradientDistance = method == .dlg ? .squaredEuclidean : .cosine
        var best: Result? = nil
        for restart in 0..<restarts {
            let start = Philox(seed: seed, stream: Philox.stream(0x1A7E, UInt64(restart)))
            var x = start.normalTensor(shape: [batch * domain.size]).scalars
            if restart == 0, let initial {
                x = initial
                if method == .inverting { clampToBox(&x, batch: batch, domain: domain) }
            }
            var lambda = Philox(seed: seed, stream: Philox.stream(0x1A7F, UInt64(restart))).normalTensor(shape: [batch * network.classes]).scalars
            if optimizer == .lbfgs {
                // DLG's joint variable: the dummy inputs, then the dummy label logits.
                let split = x.count
                let solution = LimitedMemoryBFGS(evaluations: iterations).minimize(x + lambda) { z in
                    var distanceValue: Float = .infinity
                    let value = network.evaluate(input: Array(z[..<split]), batch: batch, labels: .soft(logits: Array(z[split...]))) { g in
                        let (d, v) = distance.valueAndDirection(g, observed)
                        distanceValue = d
                        return v
                    }
                    return (distanceValue, value.inputDerivative + value.labelLogitDerivative!)
                }
                x = Array(solution.point[..<split])
                lambda = Array(solution.point[split...])
            } else {
                var adamX = Adam(count: x.count), adamL = Adam(count: lambda.count)
                for step in 0..<iterations {
                    let rate = learningRate * decay(step)
                    var objective: Float = .infinity
                    let value = network.evaluate(input: x, batch: batch,
                                                 labels: method == .dlg ? .soft(logits: lambda) : .hard(labels!)) { g in
                        let (d, v) = distance.valueAndDirection(g, observed)
                        objective = d
                        return v
                    }
                    var dx = value.inputDerivative
                    if totalVariation > 0 { objective += totalVariation * addTotalVariation(x, batch: batch, domain: domain, into: &dx, weight: totalVariation) }
                    guard dx.allSatisfy(\.isFinite) else { break }
                    adamX.step(&x, gradient: dx, rate: rate, signed: signedGradients)
                    if method == .dlg, let dl = value.labelLogitDerivative { adamL.step(&lambda, gradient: dl, rate: rate, signed: false) }
                    if method == .inverting { clampToBox(&x, batch: batch, domain: domain) }
                }
            }
            // The objective of the final iterate, to choose among restarts.
            let g = network.gradients(input: x, batch: batch, labels: method == .dlg ? .soft(logits: lambda) : .hard(labels!)).gradients
            var objective = distance.valueAndDirection(g, observed).value
            if totalVariation > 0 {
                var unused = [Float](repeating: 0, count: x.count)
                objective += totalVariation * addTotalVariation(x, batch: batch, domain: domain, into: &unused, weight: 0)
            }
            let chosen = method == .dlg
                ? (0..<batch).map { row in (0..<network.classes).max { lambda[row * network.classes + $0] < lambda[row * network.classes + $1] }! }
                : labels!
            if best == nil || (objective.isFinite && !(objective >= best!.objective)) {
                best = Result(inputs: x, labels: chosen, objective: objective)
            }
        }
        return best!
    }

    /// Inverting Gradients' schedule: ×0.1 at 3/8, 5/8 and 7/8 of the iterations.
    private func decay(_ step: Int) -> Float {
        guard method == .inverting else { return 1 }
        let f = Double(step) / Double(iterations)
        return f < 3.0 / 8 ? 1 : f < 5.0 / 8 ? 0.1 : f < 7.0 / 8 ? 0.01 : 0.001
    }

    private func clampToBox(_ x: inout [Float], batch: Int, domain: InputDomain) {
        let plane = domain.height * domain.width
        for b in 0..<batch { for c in 0..<domain.channels {
            let base = (b * domain.channels + c) * plane
            for i in base..<(base + plane) { x[i] = min(max(x[i], domain.lower[c]), domain.upper[c]) }
        } }
    }
}

/// Anisotropic total variation, mean |x[i+1,j] − x[i,j]| + mean |x[i,j+1] − x[i,j]| per image
/// (Geiping et al.), summed over the batch. Returns TV and adds weight · ∂TV/∂x (a subgradient,
/// 0 where neighbours are equal) into `gradient`.
func addTotalVariation(_ x: [Float], batch: Int, domain: InputDomain, into gradient: inout [Float], weight: Float) -> Float {
    let h = domain.height, w = domain.width, plane = h * w
    let vertical = Float(max(1, (h - 1) * w * domain.channels)), horizontal = Float(max(1, h * (w - 1) * domain.channels))
    var value: Float = 0
    for b in 0..<batch { for c in 0..<domain.channels {
        let base = (b * domain.channels + c) * plane
        for i in 0..<h { for j in 0..<w {
            let p = base + i * w + j
            if i + 1 < h {
                let d = x[p + w] - x[p]
                value += abs(d) / vertical
                let s: Float = d > 0 ? 1 : d < 0 ? -1 : 0
                gradient[p + w] += weight * s / vertical; gradient[p] -= weight * s / vertical
            }
            if j + 1 < w {
                let d = x[p + 1] - x[p]
                value += abs(d) / horizontal
                let s: Float = d > 0 ? 1 : d < 0 ? -1 : 0
                gradient[p + 1] += weight * s / horizontal; gradient[p] -= weight * s / horizontal
            }
        } }
    } }
    return value
}

/// Adam (Kingma & Ba) with β = (0.9, 0.999), ε = 1e-8.
struct Adam {
    var m: [Float], v: [Float], t = 0

    init(count: Int) { m = [Float](repeating: 0, count: count); v = m }

    mutating func step(_ x: inout [Float], gradient: [Float], rate: Float, signed: Bool) {
        t += 1
        let b1: Float = 0.9, b2: Float = 0.999
        let c1 = 1 - pow(b1, Float(t)), c2 = 1 - pow(b2, Float(t))
        for i in x.indices {
            let g: Float = signed ? (gradient[i] > 0 ? 1 : gradient[i] < 0 ? -1 : 0) : gradient[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            x[i] -= rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8)
        }
    }
}
