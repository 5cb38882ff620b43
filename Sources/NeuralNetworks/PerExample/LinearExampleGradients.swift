import LinearAlgebra

/// `y_j = W x_j + b` has the per-example gradients ∂W_j = dy_j x_jᵀ and ∂b_j = dy_j, so (ghost
/// clipping) ‖∂W_j‖² = ‖dy_j‖²‖x_j‖² and ‖∂b_j‖² = ‖dy_j‖² come from the recorded activations
/// and output gradients without materializing any ∂W_j, and the clipped sum is one product
/// (diag(c)·dY)ᵀ·X.
extension Linear: PerExampleLayer {
    func recordsPerExample(_ on: Bool) {
        recordsOutputGradient = on
        if !on { recordedOutputGradient = nil }
    }

    func exampleGradients(examples n: Int) throws -> LayerExampleGradients {
        guard let x = cachedInput, let dy = recordedOutputGradient else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        let dyNorms = PerExampleGradients.rowSquaredNorms(dy, columns: outFeatures)
        let xNorms = PerExampleGradients.rowSquaredNorms(x, columns: inFeatures)
        var squared = [zip(dyNorms, xNorms).map { $0 * $1 }]
        if bias != nil { squared.append(dyNorms) }
        return LayerExampleGradients(squaredNorms: squared) { [self] scales in
            // Rows of dY scaled by the weight's clip factors (and the bias's, when per-layer differs).
            let scaled = PerExampleGradients.scaledRows(dy, columns: outFeatures, by: scales[scales.startIndex])
            scaled.withPointer { s in
                x.withPointer { xp in
                    weight.gradient.withMutablePointer { dw in
                        sgemm(.transposed, .none, m: outFeatures, n: inFeatures, k: n,
                              a: s, lda: outFeatures, b: xp, ldb: inFeatures, beta: 1, c: dw, ldc: inFeatures)
                    }
                }
            }
            if let bias {
                let biasScaled = PerExampleGradients.scaledRows(dy, columns: outFeatures, by: scales[scales.startIndex + 1])
                biasScaled.withPointer { s in
                    bias.gradient.withMutablePointer { db in columnSums(s, rows: n, columns: outFeatures, into: db) }
                }
            }
        }
    }
}
