import LinearAlgebra

/// A layer whose parameters' per-example gradients come from one backward pass over the batch
/// (`PerExampleGradients.Method.efficient`): in per-example mode its backward adds nothing to the
/// parameter gradients and keeps what it needs instead.
protocol PerExampleLayer: Layer {
    /// Turns per-example mode on or off; off drops what was kept.
    func recordsPerExample(_ on: Bool)
    /// Example j's gradients of the last backward pass in per-example mode, for a batch of
    /// `examples`.
    func exampleGradients(examples: Int) throws -> LayerExampleGradients
}

/// One layer's per-example gradients: the squared norm of each parameter's gradient for each
/// example, and the clipped sum once the clip factors are known.
struct LayerExampleGradients {
    /// `[parameter][example]`, parameters in the layer's `parameters` order.
    var squaredNorms: [[Double]]
    /// Adds Σ_j scales[k][j]·g_kj into parameter k's gradient.
    var addClippedSum: (_ scales: ArraySlice<[Float]>) -> Void
}
