import LinearAlgebra

/// `y = x·Wᵀ + b` on `[N, in]` inputs, PyTorch's `nn.Linear` (weight `[out, in]`).
public final class Linear: Layer {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    private(set) var cachedInput: Tensor?
    /// Per-example mode (DP-SGD, `PerExampleGradients`): backward keeps ∂loss/∂output for the
    /// per-example norms and the clipped sum, and adds nothing to the parameter gradients.
    var recordsOutputGradient = false
    var recordedOutputGradient: Tensor?

    /// A layer with PyTorch's default initialization from `initializer`.
    public init(name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true,
                initializer: inout ParameterInitializer) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(name: qualified(name, "weight"),
                           value: initializer.uniform(shape: [outFeatures, inFeatures], bound: bound),
                           isNormalizationOrBias: false)
        self.bias = bias ? Parameter(name: qualified(name, "bias"),
                                     value: initializer.uniform(shape: [outFeatures], bound: bound),
                                     isNormalizationOrBias: true) : nil
    }

    /// A layer whose weight is an existing parameter (tied weights, e.g. an LM decoder sharing
    /// the embedding matrix `[out, in]`).
    public init(name: String, tiedWeight: Parameter, bias: Parameter?) {
        self.name = name
        self.outFeatures = tiedWeight.shape[0]
        self.inFeatures = tiedWeight.shape[1]
        self.weight = tiedWeight
        self.bias = bias
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.shape.count == 2, input.shape[1] == inFeatures, input.shape[0] > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[N, \(inFeatures)]", got: input.shape)
        }
        let n = input.shape[0]
        var output = Tensor(shape: [n, outFeatures])
        output.withMutablePointer { y in
            if let bias {
                bias.value.withPointer { b in
                    for row in 0..<n { (y + row &* outFeatures).update(from: b, count: outFeatures) }
                }
            }
            input.withPointer { x in
                weight.value.withPointer { w in
                    sgemm(.none, .transposed, m: n, n: outFeatures, k: inFeatures,
                          a: x, lda: inFeatures, b: w, ldb: inFeatures,
                          beta: bias == nil ? 0 : 1, c: y, ldc: outFeatures)
                }
            }
        }
        cachedInput = training ? input : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let input = cachedInput else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        let n = input.shape[0]
        guard outputGradient.shape == [n, outFeatures] else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\([n, outFeatures])",
                                                got: outputGradient.shape)
        }
        if recordsOutputGradient {
            recordedOutputGradient = outputGradient
        } else {
            outputGradient.withPointer { dy in
                input.withPointer { x in
                    // ∂W += dyᵀ·x
                    weight.gradient.withMutablePointer { dw in
                        sgemm(.transposed, .none, m: outFeatures, n: inFeatures, k: n,
                              a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 1, c: dw, ldc: inFeatures)
                    }
                }
                if let bias {
                    bias.gradient.withMutablePointer { db in columnSums(dy, rows: n, columns: outFeatures, into: db) }
                }
            }
        }
        // ∂x = dy·W
        var inputGradient = Tensor(shape: [n, inFeatures])
        inputGradient.withMutablePointer { dx in
            outputGradient.withPointer { dy in
                weight.value.withPointer { w in
                    sgemm(.none, .none, m: n, n: inFeatures, k: outFeatures,
                          a: dy, lda: outFeatures, b: w, ldb: inFeatures, c: dx, ldc: inFeatures)
                }
            }
        }
        return inputGradient
    }
}

/// `sums[j] += Σᵢ m[i, j]` for a row-major `rows × columns` matrix (row by row, so the
/// inner loop is contiguous and vectorizes).
@inlinable
func columnSums(_ m: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>) {
    for i in 0..<rows {
        let row = m + i &* columns
        for j in 0..<columns { sums[j] += row[j] }
    }
}
