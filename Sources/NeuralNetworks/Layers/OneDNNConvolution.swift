import COneDNNConvolution

/// oneDNN's primitives for one convolution geometry (batch, input extent, thread count), and the
/// blocked buffers they share with the other convolutions of a model (`ConvolutionWorkspace`).
final class OneDNNConvolution {
    struct Key: Hashable { let batch: Int, height: Int, width: Int, threads: Int }

    let handle: OpaquePointer
    let layer: String
    /// The kernels oneDNN chose (forward; backward data; backward weights).
    let implementation: String

    init(layer: Conv2d, key: Key) throws {
        var message = [CChar](repeating: 0, count: 320)
        guard let handle = onednn_convolution_create(
            Int32(key.batch), Int32(layer.inChannels), Int32(key.height), Int32(key.width),
            Int32(layer.outChannels), Int32(layer.kernelSize), Int32(layer.stride), Int32(layer.padding),
            Int32(key.threads), &message, message.count) else {
            throw NeuralNetworkError.kernelFailure(
                layer: layer.name, message: "oneDNN cannot create its convolution for input "
                + "[\(layer.inChannels), \(key.batch), \(key.height), \(key.width)]: \(String(cString: message)) "
                + "(the im2col implementation needs no oneDNN)")
        }
        self.handle = handle
        self.layer = layer.name
        implementation = String(cString: onednn_convolution_implementation(handle))
    }

    deinit { onednn_convolution_destroy(handle) }

    func forward(_ workspace: ConvolutionWorkspace, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>) throws {
        try check(onednn_convolution_forward(handle, workspace.oneDNN, input, weight, output))
    }

    func backward(_ workspace: ConvolutionWorkspace, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, weightGradient: UnsafeMutablePointer<Float>?,
                  inputGradient: UnsafeMutablePointer<Float>?) throws {
        try check(onednn_convolution_backward(handle, workspace.oneDNN, input, weight, outputGradient,
                                              weightGradient, inputGradient))
    }

    private func check(_ status: Int32) throws {
        guard status != 0 else { return }
        throw NeuralNetworkError.kernelFailure(
            layer: layer, message: "oneDNN's convolution failed: \(String(cString: onednn_status_name(status)))")
    }
}
