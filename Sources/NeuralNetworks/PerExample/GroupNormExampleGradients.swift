import LinearAlgebra

/// Group norm keeps its per-example ∂γ and ∂β (`[B, C]`) in per-example mode: the sums over each
/// example's channel plane that its backward forms anyway.
extension GroupNorm: PerExampleLayer {
    func recordsPerExample(_ on: Bool) {
        recordsPerExampleGradients = on
        if !on { clearPerExampleGradients() }
    }

    func exampleGradients(examples: Int) throws -> LayerExampleGradients {
        guard perExampleWeightGradient.count == examples * channels, perExampleBiasGradient.count == examples * channels else {
            throw NeuralNetworkError.backwardWithoutForward(layer: name)
        }
        let weights = try Tensor(shape: [examples, channels], scalars: perExampleWeightGradient)
        let biases = try Tensor(shape: [examples, channels], scalars: perExampleBiasGradient)
        let squared = [PerExampleGradients.rowSquaredNorms(weights, columns: channels),
                       PerExampleGradients.rowSquaredNorms(biases, columns: channels)]
        return LayerExampleGradients(squaredNorms: squared) { [self] scales in
            PerExampleGradients.addWeightedRows(weights, columns: channels, weights: scales[scales.startIndex], into: weight)
            PerExampleGradients.addWeightedRows(biases, columns: channels, weights: scales[scales.startIndex + 1], into: bias)
        }
    }
}
