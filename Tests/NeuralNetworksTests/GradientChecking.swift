import LinearAlgebra
@testable import NeuralNetworks
import TestSupport

/// Values bounded away from 0 (|x| ≥ 0.2), so a ±eps perturbation never crosses a ReLU kink.
func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
    var t = normalTensor(shape, seed: seed, stream: 77)
    t.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = b[i] >= 0 ? b[i] + 0.2 : b[i] - 0.2 } }
    return t
}

/// ⟨r, y⟩ accumulated in Double: the scalar "loss" whose gradient with respect to y is r.
func projection(_ y: Tensor, _ r: Tensor) -> Double {
    zip(y.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

/// Up to `limit` indices spread over 0..<count (deterministic).
func sampleIndices(_ count: Int, limit: Int = 24) -> [Int] {
    if count <= limit { return Array(0..<count) }
    return (0..<limit).map { ($0 * 7919 + 13) % count }
}

/// Central finite differences in Float with eps = 1e-2 against the analytic gradient.
///
/// Tolerance argument: f(x ± eps) is a Float computation whose rounding error is about
/// 1e-7·Σ|rᵢyᵢ| ≲ 1e-4 for the sizes used (≤ ~2,000 outputs of magnitude ~1), so the
/// quotient's rounding error is ≲ 1e-4/(2·1e-2) = 5e-3 absolute; the truncation error of the
/// central difference is eps²/6·|f'''| ≈ 2e-5 for smooth layers. Sampled gradient vectors
/// have norms ≳ 1, so a relative error below 2e-2 separates a correct backward pass from a
/// wrong one (a wrong index or a missing term gives errors of order 1).
struct GradientCheck {
    var epsilon: Float = 1e-2
    var tolerance: Double = 2e-2

    /// Returns (worst relative error, description) over the input and every parameter.
    func check(inputs: Tensor, parameters: [Parameter], analyticInput: Tensor?,
               loss: (Tensor) throws -> Double) rethrows -> [(String, Double)] {
        var results: [(String, Double)] = []
        if let analyticInput {
            var numeric: [Double] = [], analytic: [Double] = []
            for i in sampleIndices(inputs.count) {
                var plus = inputs, minus = inputs
                plus.scalars[i] += epsilon
                minus.scalars[i] -= epsilon
                numeric.append((try loss(plus) - loss(minus)) / Double(2 * epsilon))
                analytic.append(Double(analyticInput.scalars[i]))
            }
            results.append(("input", relativeError(numeric, analytic)))
        }
        for p in parameters {
            var numeric: [Double] = [], analytic: [Double] = []
            let saved = p.value
            for i in sampleIndices(p.value.count) {
                p.value.scalars[i] = saved.scalars[i] + epsilon
                let up = try loss(inputs)
                p.value.scalars[i] = saved.scalars[i] - epsilon
                let down = try loss(inputs)
                p.value = saved
                numeric.append((up - down) / Double(2 * epsilon))
                analytic.append(Double(p.gradient.scalars[i]))
            }
            results.append((p.name, relativeError(numeric, analytic)))
        }
        return results
    }

    /// Checks a `Layer`: forward in training mode, backward of a fixed random r, then
    /// differences of ⟨r, forward(x)⟩.
    func check(layer: Layer, input: Tensor, seed: UInt64 = 5) throws -> [(String, Double)] {
        let y = try layer.forward(input, training: true)
        let r = normalTensor(y.shape, seed: seed, stream: 77)
        for p in layer.parameters { p.zeroGradient() }
        let dx = try layer.backward(r)
        return try check(inputs: input, parameters: layer.parameters, analyticInput: dx) { x in
            projection(try layer.forward(x, training: true), r)
        }
    }
}
