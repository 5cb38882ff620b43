import Foundation
import LinearAlgebra

/// A layer of a network whose *gradient map* can itself be differentiated.
///
/// Gradient matching needs ∂D(g(x), o)/∂x where g(x) = ∇_θ ℓ(f(x; θ)) is the parameter gradient
/// and D a distance to the observed message o. With v = ∂D/∂g this is the vector-Jacobian
/// product (∂g/∂x)ᵀ v, and by the symmetry of mixed second derivatives
/// (∂g/∂x)ᵀ v = ∇_x (v · ∇_θ ℓ) — the x-block of the Hessian-vector product of ℓ in the
/// direction (θ̇ = v, ẋ = 0). Forward-over-reverse (Pearlmutter's R-operator) computes it exactly
/// with one more forward and one more backward pass: each layer propagates tangents through its
/// forward pass (`tangentForward`) and through its backward pass (`tangentBackward`).
///
/// Every array is batch-major and flat (`[B, features]`, images `[B, C, H, W]`).
/// The call order per evaluation is `forward`, `backward`, then (with parameter tangents set)
/// `tangentForward`, `tangentBackward`; each pass caches what the next one needs.
public protocol SecondOrderLayer: AnyObject {
    /// Elements per example of the input and of the output.
    var inputSize: Int { get }
    var outputSize: Int { get }
    /// The shapes of the trainable tensors, in the order of `parameters`.
    var parameterShapes: [[Int]] { get }
    /// The trainable tensors' values (flat, row-major), set by the owner of the network.
    var parameters: [[Float]] { get set }
    /// θ̇ per trainable tensor for the tangent passes (empty: all zero).
    var parameterTangents: [[Float]] { get set }

    func forward(_ input: [Float], batch: Int) -> [Float]
    /// Returns ∂ℓ/∂input and stores ∂ℓ/∂θ per tensor in `parameterGradients`.
    func backward(_ outputGradient: [Float]) -> [Float]
    var parameterGradients: [[Float]] { get }
    /// ẏ for the tangent ẋ of the input (nil: ẋ = 0) and the parameter tangents.
    func tangentForward(_ inputTangent: [Float]?) -> [Float]
    /// The tangent of ∂ℓ/∂input given the tangent of ∂ℓ/∂output.
    func tangentBackward(_ outputGradientTangent: [Float]) -> [Float]
}

extension SecondOrderLayer {
    public var parameterShapes: [[Int]] { [] }
    public var parameters: [[Float]] { get { [] } set {} }
    public var parameterTangents: [[Float]] { get { [] } set {} }
    public var parameterGradients: [[Float]] { [] }
}

/// C = op(A)·op(B) (+ C when `accumulate`), row-major, through the project's `sgemm`.
@inline(__always)
func multiply(_ a: [Float], _ ta: Transpose, _ b: [Float], _ tb: Transpose, m: Int, n: Int, k: Int,
              into c: inout [Float], accumulate: Bool = false) {
    let lda = ta == .none ? k : m, ldb = tb == .none ? n : k
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                sgemm(ta, tb, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                      beta: accumulate ? 1 : 0, c: pc.baseAddress!, ldc: n)
            }
        }
    }
}

/// `y = x·Wᵀ + b` (weight `[out, in]`, bias `[out]`), as `NeuralNetworks.Linear`.
///
/// Bilinear in (x, W): ẏ = ẋ·Wᵀ + x·Ẇᵀ + ḃ, and with ∂ℓ/∂x = gy·W its tangent is ġy·W + gy·Ẇ.
public final class DenseLayer: SecondOrderLayer {
    public let inputSize: Int
    public let outputSize: Int
    public var parameters: [[Float]]
    public var parameterTangents: [[Float]] = []
    public private(set) var parameterGradients: [[Float]] = []
    private var input: [Float] = []
    private var outputGradient: [Float] = []
    private var batch = 0

    public init(weight: [Float], bias: [Float], inputSize: Int, outputSize: Int) {
        precondition(weight.count == inputSize * outputSize && bias.count == outputSize, "dense layer shapes")
        self.inputSize = inputSize
        self.outputSize = outputSize
        parameters = [weight, bias]
    }

    public var parameterShapes: [[Int]] { [[outputSize, inputSize], [outputSize]] }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        self.input = input
        self.batch = batch
        var y = [Float](repeating: 0, count: batch * outputSize)
        for row in 0..<batch { for j in 0..<outputSize { y[row * outputSize + j] = parameters[1][j] } }
        multiply(input, .none, parameters[0], .transposed, m: batch, n: outputSize, k: inputSize, into: &y, accumulate: true)
        return y
    }

    public func backward(_ outputGradient: [Float]) -> [Float] {
        self.outputGradient = outputGradient
        var gw = [Float](repeating: 0, count: outputSize * inputSize)
        multiply(outputGradient, .transposed, input, .none, m: outputSize, n: inputSize, k: batch, into: &gw)
        var gb = [Float](repeating: 0, count: outputSize)
        for row in 0..<batch { for j in 0..<outputSize { gb[j] += outputGradient[row * outputSize + j] } }
        parameterGradients = [gw, gb]
        var gx = [Float](repeating: 0, count: batch * inputSize)
        multiply(outputGradient, .none, parameters[0], .none, m: batch, n: inputSize, k: outputSize, into: &gx)
        return gx
    }

    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: batch * outputSize)
        if let inputTangent {
            multiply(inputTangent, .none, parameters[0], .transposed, m: batch, n: outputSize, k: inputSize, into: &y)
        }
        if !parameterTangents.isEmpty {
            for row in 0..<batch { for j in 0..<outputSize { y[row * outputSize + j] += parameterTangents[1][j] } }
            multiply(input, .none, parameterTangents[0], .transposed, m: batch, n: outputSize, k: inputSize, into: &y, accumulate: true)
        }
        return y
    }

    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] {
        var gx = [Float](repeating: 0, count: batch * inputSize)
        multiply(outputGradientTangent, .none, parameters[0], .none, m: batch, n: inputSize, k: outputSize, into: &gx)
        if !parameterTangents.isEmpty {
            multiply(outputGradient, .none, parameterTangents[0], .none, m: batch, n: inputSize, k: outputSize, into: &gx, accumulate: true)
        }
        return gx
    }
}

/// max(0, x). Piecewise linear, so its second derivative is zero away from 0 and every tangent
/// is masked like the gradient: ẏ = 1[x>0]·ẋ, and the tangent of ∂ℓ/∂x is 1[x>0]·ġy.
public final class ReLULayer: SecondOrderLayer {
    public let inputSize: Int
    public var outputSize: Int { inputSize }
    private(set) var active: [Bool] = []

    public init(size: Int) { inputSize = size }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        active = input.map { $0 > 0 }
        return input.map { max($0, 0) }
    }

    private func masked(_ values: [Float]) -> [Float] {
        var out = values
        for i in out.indices where !active[i] { out[i] = 0 }
        return out
    }

    public func backward(_ outputGradient: [Float]) -> [Float] { masked(outputGradient) }
    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        inputTangent.map(masked) ?? [Float](repeating: 0, count: active.count)
    }
    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] { masked(outputGradientTangent) }
}

/// σ(x) = 1/(1 + e⁻ˣ), the activation of the DLG paper's network. Unlike ReLU it has a second
/// derivative, σ'' = σ'(1 − 2σ) with σ' = σ(1 − σ), so the tangent of ∂ℓ/∂x = gy·σ'(x) is
/// ġy·σ'(x) + gy·σ''(x)·ẋ — the term that makes gradient matching smooth in the input.
public final class SigmoidLayer: SecondOrderLayer {
    public let inputSize: Int
    public var outputSize: Int { inputSize }
    private var output: [Float] = []
    private var outputGradient: [Float] = []
    private var inputTangent: [Float]?

    public init(size: Int) { inputSize = size }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        output = input.map { 1 / (1 + exp(-$0)) }
        return output
    }

    private func slope(_ i: Int) -> Float { output[i] * (1 - output[i]) }

    public func backward(_ outputGradient: [Float]) -> [Float] {
        self.outputGradient = outputGradient
        return outputGradient.indices.map { outputGradient[$0] * slope($0) }
    }

    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        self.inputTangent = inputTangent
        guard let inputTangent else { return [Float](repeating: 0, count: output.count) }
        return inputTangent.indices.map { inputTangent[$0] * slope($0) }
    }

    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] {
        outputGradientTangent.indices.map { i in
            let first = outputGradientTangent[i] * slope(i)
            guard let inputTangent else { return first }
            return first + outputGradient[i] * slope(i) * (1 - 2 * output[i]) * inputTangent[i]
        }
    }
}
