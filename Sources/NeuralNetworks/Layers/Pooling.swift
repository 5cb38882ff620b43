import LinearAlgebra

/// Checks a channel-major `[C, B, H, W]` input for a pooling window.
private func poolingGeometry(_ layer: String, _ shape: [Int], kernel: Int, stride: Int) throws -> (Int, Int) {
    guard shape.count == 4, shape[0] > 0, shape[1] > 0, shape[2] >= kernel, shape[3] >= kernel else {
        throw NeuralNetworkError.inputShape(layer: layer, expected: "[C, B, H, W] (channel-major, H and W ≥ \(kernel))",
                                            got: shape)
    }
    return ((shape[2] - kernel) / stride + 1, (shape[3] - kernel) / stride + 1)
}

/// Max pooling (no padding) on channel-major `[C, B, H, W]`. The backward pass routes each
/// output gradient to the position of its window's maximum (the first one on ties, as the
/// forward pass scans), remembered as an index per output.
public final class MaxPool2d: Layer {
    public let name: String
    public let kernelSize: Int
    public let stride: Int
    private var inputShape: [Int]?
    private var argmax: [Int32] = []

    public init(name: String = "maxpool", kernelSize: Int, stride: Int? = nil) {
        self.name = name
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let (ho, wo) = try poolingGeometry(name, input.shape, kernel: kernelSize, stride: stride)
        let planes = input.shape[0] * input.shape[1], h = input.shape[2], w = input.shape[3]
        var indices = [Int32](repeating: 0, count: planes * ho * wo)
        let k = kernelSize, s = stride
        let output = input.withPointer { x in
            indices.withUnsafeMutableBufferPointer { idx in
                Tensor.filled(shape: [input.shape[0], input.shape[1], ho, wo]) { y, _ in
                    for plane in 0..<planes {
                        let xp = x + plane * h * w
                        for oy in 0..<ho {
                            for ox in 0..<wo {
                                var best = -Float.infinity, bestIndex = (oy * s) * w + ox * s
                                for ky in 0..<k {
                                    for kx in 0..<k {
                                        let i = (oy * s + ky) * w + ox * s + kx
                                        if xp[i] > best || (best.isNaN == false && xp[i].isNaN) { best = xp[i]; bestIndex = i }
                                    }
                                }
                                let o = (plane * ho + oy) * wo + ox
                                y[o] = best
                                idx[o] = Int32(bestIndex)
                            }
                        }
                    }
                }
            }
        }
        inputShape = input.shape
        argmax = indices
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.count == argmax.count, outputGradient.shape.count == 4 else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(argmax.count) elements",
                                                got: outputGradient.shape)
        }
        let planeOut = outputGradient.shape[2] * outputGradient.shape[3], planeIn = shape[2] * shape[3]
        var inputGradient = Tensor(shape: shape)
        inputGradient.withMutablePointer { dx in
            outputGradient.withPointer { dy in
                for o in 0..<argmax.count {
                    dx[(o / planeOut) * planeIn + Int(argmax[o])] += dy[o]
                }
            }
        }
        return inputGradient
    }
}

/// Average pooling (no padding) on channel-major `[C, B, H, W]`; backward spreads each
/// output gradient evenly (1/k²) over its window.
public final class AvgPool2d: Layer {
    public let name: String
    public let kernelSize: Int
    public let stride: Int
    private var inputShape: [Int]?

    public init(name: String = "avgpool", kernelSize: Int, stride: Int? = nil) {
        self.name = name
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let (ho, wo) = try poolingGeometry(name, input.shape, kernel: kernelSize, stride: stride)
        let planes = input.shape[0] * input.shape[1], h = input.shape[2], w = input.shape[3]
        let k = kernelSize, s = stride, scale = 1 / Float(k * k)
        inputShape = input.shape
        return input.withPointer { x in
            Tensor.filled(shape: [input.shape[0], input.shape[1], ho, wo]) { y, _ in
                for plane in 0..<planes {
                    let xp = x + plane * h * w
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            var sum: Float = 0
                            for ky in 0..<k { for kx in 0..<k { sum += xp[(oy * s + ky) * w + ox * s + kx] } }
                            y[(plane * ho + oy) * wo + ox] = sum * scale
                        }
                    }
                }
            }
        }
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        let (ho, wo) = try poolingGeometry(name, shape, kernel: kernelSize, stride: stride)
        let expected = [shape[0], shape[1], ho, wo]
        guard outputGradient.shape == expected else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(expected)", got: outputGradient.shape)
        }
        let planes = shape[0] * shape[1], h = shape[2], w = shape[3]
        let k = kernelSize, s = stride, scale = 1 / Float(k * k)
        var inputGradient = Tensor(shape: shape)
        inputGradient.withMutablePointer { dx in
            outputGradient.withPointer { dy in
                for plane in 0..<planes {
                    let dxp = dx + plane * h * w
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            let g = dy[(plane * ho + oy) * wo + ox] * scale
                            for ky in 0..<k { for kx in 0..<k { dxp[(oy * s + ky) * w + ox * s + kx] += g } }
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}

/// Global average pooling: channel-major `[C, B, H, W]` → batch-major `[B, C]`
/// (PyTorch's `adaptive_avg_pool2d(x, 1).flatten(1)`), ready for a `Linear` head.
public final class GlobalAveragePool: Layer {
    public let name: String
    private var inputShape: [Int]?

    public init(name: String = "avgpool") { self.name = name }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let s = input.shape
        guard s.count == 4, s[0] > 0, s[1] > 0, s[2] > 0, s[3] > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[C, B, H, W] (channel-major)", got: s)
        }
        let c = s[0], b = s[1], plane = s[2] * s[3]
        inputShape = s
        return input.withPointer { x in
            Tensor.filled(shape: [b, c]) { y, _ in
                for ch in 0..<c {
                    for i in 0..<b {
                        y[i * c + ch] = Vector.sum(UnsafeBufferPointer(start: x + (ch * b + i) * plane, count: plane))
                            / Float(plane)
                    }
                }
            }
        }
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let s = inputShape else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        let c = s[0], b = s[1], plane = s[2] * s[3]
        guard outputGradient.shape == [b, c] else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\([b, c])", got: outputGradient.shape)
        }
        return outputGradient.withPointer { dy in
            Tensor.filled(shape: s) { dx, _ in
                for ch in 0..<c {
                    for i in 0..<b {
                        (dx + (ch * b + i) * plane).update(repeating: dy[i * c + ch] / Float(plane), count: plane)
                    }
                }
            }
        }
    }
}
