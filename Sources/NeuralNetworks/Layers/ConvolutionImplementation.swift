/// How `Conv2d` computes its three products (Y, ∂W, ∂X).
///
/// - `oneDNN`: oneDNN's JIT kernels (the library PyTorch's CPU convolutions come from), on
///   operands reordered into its blocked layouts for each call (`bench model` times both:
///   docs/neural-networks.md).
/// - `im2col`: patches copied into a matrix and multiplied by OpenBLAS's sgemm. Kept as the
///   oracle the oneDNN path is tested against, and for a machine without libdnnl.
///
/// Both sum the same products in different orders, so they agree to float rounding, not bit for
/// bit; each is bit for bit reproducible on one machine at a fixed thread count.
public enum ConvolutionImplementation: String, CaseIterable, Sendable, Codable {
    case oneDNN = "onednn"
    case im2col

    /// What a new `Conv2d` uses: oneDNN.
    public static let `default`: ConvolutionImplementation = .oneDNN
}

extension Classifier {
    /// Makes every convolution of the model use `implementation`.
    public func useConvolutions(_ implementation: ConvolutionImplementation) {
        for layer in body.allLayers { (layer as? Conv2d)?.implementation = implementation }
    }
}
