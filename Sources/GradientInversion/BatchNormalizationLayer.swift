import Foundation

/// Batch normalization in training mode on `[B, C, H, W]` (PyTorch's `nn.BatchNorm2d` with batch
/// statistics, as `NeuralNetworks.BatchNorm2d` when training): per channel, over its n = B·H·W
/// values, μ = mean, σ² = biased variance, s = 1/√(σ² + ε), x̂ = (x − μ)·s, y = γ·x̂ + β.
/// Learnable γ, β `[C]`. The gradient an observer of a training step sees is computed with these
/// batch statistics, so they are functions of the input and both tangent passes differentiate
/// through them.
///
/// With per-channel means ⟨·⟩ over the n values and g = ∂ℓ/∂y:
/// - backward: ∂γ = Σ g·x̂, ∂β = Σ g, ∂x = γ·s·(g − ⟨g⟩ − x̂·⟨g·x̂⟩);
/// - tangent forward: with q = ⟨x̂·ẋ⟩, ṡ = −s²·q and the tangent of x̂ is
///   s·(ẋ − ⟨ẋ⟩ − x̂·q), so ẏ = γ̇·x̂ + γ·(that) + β̇;
/// - tangent backward: the product rule on ∂x, with the tangent of ⟨g·x̂⟩ being ⟨ġ·x̂ + g·(tangent of x̂)⟩.
public final class BatchNormalizationLayer: SecondOrderLayer {
    public let channels: Int, height: Int, width: Int
    public let epsilon: Float
    public var inputSize: Int { channels * height * width }
    public var outputSize: Int { inputSize }
    public var parameters: [[Float]]
    public var parameterTangents: [[Float]] = []
    public private(set) var parameterGradients: [[Float]] = []
    private var normalized: [Float] = []
    private var inverseStd: [Float] = []
    private var outputGradient: [Float] = []
    /// Set by `tangentForward`: the tangents of x̂ and of s (nil: ẋ was zero, so both are zero).
    private var normalizedTangent: [Float]?
    private var inverseStdTangent: [Float] = []
    private var batch = 0

    public init(gamma: [Float], beta: [Float], channels: Int, height: Int, width: Int, epsilon: Float = 1e-5) {
        precondition(gamma.count == channels && beta.count == channels, "batch norm shapes")
        self.channels = channels; self.height = height; self.width = width; self.epsilon = epsilon
        parameters = [gamma, beta]
    }

    public var parameterShapes: [[Int]] { [[channels], [channels]] }
    private var plane: Int { height * width }

    /// The flat indices of channel c's n = B·H·W values.
    private func indices(channel c: Int) -> [Int] {
        var index: [Int] = []
        index.reserveCapacity(batch * plane)
        for b in 0..<batch {
            let start = (b * channels + c) * plane
            index += start..<(start + plane)
        }
        return index
    }

    private func mean(_ values: [Float], _ index: [Int]) -> Float {
        index.reduce(0) { $0 + values[$1] } / Float(index.count)
    }

    private func meanProduct(_ a: [Float], _ b: [Float], _ index: [Int]) -> Float {
        index.reduce(0) { $0 + a[$1] * b[$1] } / Float(index.count)
    }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        precondition(batch * plane >= 2, "batch norm in training mode needs at least 2 values per channel")
        self.batch = batch
        normalized = [Float](repeating: 0, count: input.count)
        inverseStd = [Float](repeating: 0, count: channels)
        var y = [Float](repeating: 0, count: input.count)
        for c in 0..<channels {
            let index = indices(channel: c)
            let mu = mean(input, index)
            let variance = index.reduce(0) { $0 + (input[$1] - mu) * (input[$1] - mu) } / Float(index.count)
            let s = 1 / (variance + epsilon).squareRoot()
            inverseStd[c] = s
            for i in index {
                normalized[i] = (input[i] - mu) * s
                y[i] = parameters[0][c] * normalized[i] + parameters[1][c]
            }
        }
        return y
    }

    public func backward(_ outputGradient: [Float]) -> [Float] {
        self.outputGradient = outputGradient
        var gx = [Float](repeating: 0, count: outputGradient.count)
        var gGamma = [Float](repeating: 0, count: channels), gBeta = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            let index = indices(channel: c)
            let a = mean(outputGradient, index), b = meanProduct(outputGradient, normalized, index)
            gBeta[c] = a * Float(index.count)
            gGamma[c] = b * Float(index.count)
            let scale = parameters[0][c] * inverseStd[c]
            for i in index { gx[i] = scale * (outputGradient[i] - a - normalized[i] * b) }
        }
        parameterGradients = [gGamma, gBeta]
        return gx
    }

    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: normalized.count)
        normalizedTangent = nil
        inverseStdTangent = [Float](repeating: 0, count: channels)
        if let inputTangent {
            var xHatDot = [Float](repeating: 0, count: normalized.count)
            for c in 0..<channels {
                let index = indices(channel: c)
                let s = inverseStd[c]
                let m = mean(inputTangent, index), q = meanProduct(normalized, inputTangent, index)
                inverseStdTangent[c] = -s * s * q
                for i in index {
                    xHatDot[i] = s * (inputTangent[i] - m - normalized[i] * q)
                    y[i] = parameters[0][c] * xHatDot[i]
                }
            }
            normalizedTangent = xHatDot
        }
        if !parameterTangents.isEmpty {
            for c in 0..<channels {
                for i in indices(channel: c) { y[i] += parameterTangents[0][c] * normalized[i] + parameterTangents[1][c] }
            }
        }
        return y
    }

    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] {
        var gx = [Float](repeating: 0, count: outputGradientTangent.count)
        let g = outputGradient, gDot = outputGradientTangent
        for c in 0..<channels {
            let index = indices(channel: c)
            let gamma = parameters[0][c], s = inverseStd[c]
            let gammaDot = parameterTangents.isEmpty ? 0 : parameterTangents[0][c]
            let a = mean(g, index), b = meanProduct(g, normalized, index)
            let aDot = mean(gDot, index)
            var bDot = meanProduct(gDot, normalized, index)
            if let normalizedTangent { bDot += meanProduct(g, normalizedTangent, index) }
            // ∂x = γ·s·r with r = g − a − x̂·b.
            let scaleDot = gammaDot * s + gamma * inverseStdTangent[c]
            for i in index {
                let xHatDot = normalizedTangent?[i] ?? 0
                let r = g[i] - a - normalized[i] * b
                let rDot = gDot[i] - aDot - xHatDot * b - normalized[i] * bDot
                gx[i] = scaleDot * r + gamma * s * rDot
            }
        }
        return gx
    }
}
