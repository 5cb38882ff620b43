import LinearAlgebra
import NeuralNetworks

/// A convolution with zero padding on `[B, C, H, W]`, weight `[O, C, k, k]`, optional bias `[O]`
/// (PyTorch's `nn.Conv2d`; the ResNets' convolutions have none), as im2col
/// (`NeuralNetworks.Im2col`) and a matrix product per example.
///
/// Bilinear in (x, W) like `DenseLayer`: with col(x) the im2col matrix `[C·k·k, H'·W']`,
/// y = W·col(x) + b, ẏ = Ẇ·col(x) + W·col(ẋ) + ḃ; ∂ℓ/∂x = col2im(Wᵀ·gy) and its tangent is
/// col2im(Ẇᵀ·gy + Wᵀ·ġy).
public final class ConvolutionLayer: SecondOrderLayer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let height: Int, width: Int
    public var outputHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outputWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    public var inputSize: Int { inChannels * height * width }
    public var outputSize: Int { outChannels * outputHeight * outputWidth }
    public var parameters: [[Float]]
    public var parameterTangents: [[Float]] = []
    public private(set) var parameterGradients: [[Float]] = []
    private var columns: [[Float]] = []
    private var outputGradient: [Float] = []
    private var batch = 0

    public init(weight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int,
                height: Int, width: Int) {
        precondition(weight.count == outChannels * inChannels * kernel * kernel && (bias?.count ?? outChannels) == outChannels,
                     "convolution shapes")
        precondition(stride >= 1 && height + 2 * padding >= kernel && width + 2 * padding >= kernel, "convolution geometry")
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel; self.stride = stride; self.padding = padding
        self.height = height; self.width = width
        parameters = bias.map { [weight, $0] } ?? [weight]
    }

    /// PyTorch's default initialization (uniform ±1/√(C·k·k)) from `initializer`, or uniform
    /// ±`bound` for weights and biases when given (the DLG paper's ±0.5).
    public convenience init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int, height: Int, width: Int,
                            bound: Float? = nil, initializer: inout ParameterInitializer) {
        let bound = bound ?? 1 / Float(inChannels * kernel * kernel).squareRoot()
        self.init(weight: initializer.uniform(shape: [outChannels, inChannels, kernel, kernel], bound: bound).scalars,
                  bias: initializer.uniform(shape: [outChannels], bound: bound).scalars,
                  inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding,
                  height: height, width: width)
    }

    public var hasBias: Bool { parameters.count == 2 }
    public var parameterShapes: [[Int]] { [[outChannels, inChannels, kernel, kernel]] + (hasBias ? [[outChannels]] : []) }
    private var rows: Int { inChannels * kernel * kernel }
    private var positions: Int { outputHeight * outputWidth }
    /// One example's `[C, H, W]` is the channel-major layout of a batch of one.
    private var geometry: ConvolutionGeometry {
        ConvolutionGeometry(channels: inChannels, batch: 1, height: height, width: width, kernel: kernel, stride: stride,
                            padding: padding, outHeight: outputHeight, outWidth: outputWidth)
    }

    private func im2col(_ x: [Float], example b: Int) -> [Float] {
        var col = [Float](repeating: 0, count: rows * positions)
        x.withUnsafeBufferPointer { px in
            col.withUnsafeMutableBufferPointer { pc in
                Im2col.gather(px.baseAddress! + b * inputSize, geometry, firstImage: 0, images: 1, into: pc.baseAddress!, threads: 1)
            }
        }
        return col
    }

    private func col2im(_ col: [Float], into gx: inout [Float], example b: Int) {
        var col = col
        col.withUnsafeMutableBufferPointer { pc in
            gx.withUnsafeMutableBufferPointer { pg in
                Im2col.scatterAdd(pc.baseAddress!, geometry, firstImage: 0, images: 1, into: pg.baseAddress! + b * inputSize, threads: 1)
            }
        }
    }

    private func addBias(_ bias: [Float], to y: inout [Float], example b: Int) {
        for o in 0..<outChannels { for s in 0..<positions { y[b * outputSize + o * positions + s] += bias[o] } }
    }

    /// W·col for one example, written into its slice of `y`.
    private func product(_ w: [Float], _ col: [Float], into y: inout [Float], example b: Int) {
        var out = [Float](repeating: 0, count: outChannels * positions)
        multiply(w, .none, col, .none, m: outChannels, n: positions, k: rows, into: &out)
        for i in out.indices { y[b * outputSize + i] += out[i] }
    }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        self.batch = batch
        columns = (0..<batch).map { im2col(input, example: $0) }
        var y = [Float](repeating: 0, count: batch * outputSize)
        for b in 0..<batch {
            product(parameters[0], columns[b], into: &y, example: b)
            if hasBias { addBias(parameters[1], to: &y, example: b) }
        }
        return y
    }

    private func slice(_ values: [Float], example b: Int) -> [Float] { Array(values[(b * outputSize)..<((b + 1) * outputSize)]) }

    public func backward(_ outputGradient: [Float]) -> [Float] {
        self.outputGradient = outputGradient
        var gw = [Float](repeating: 0, count: outChannels * rows), gb = [Float](repeating: 0, count: outChannels)
        var gx = [Float](repeating: 0, count: batch * inputSize)
        for b in 0..<batch {
            let gy = slice(outputGradient, example: b)
            multiply(gy, .none, columns[b], .transposed, m: outChannels, n: rows, k: positions, into: &gw, accumulate: true)
            for o in 0..<outChannels { for s in 0..<positions { gb[o] += gy[o * positions + s] } }
            var col = [Float](repeating: 0, count: rows * positions)
            multiply(parameters[0], .transposed, gy, .none, m: rows, n: positions, k: outChannels, into: &col)
            col2im(col, into: &gx, example: b)
        }
        parameterGradients = hasBias ? [gw, gb] : [gw]
        return gx
    }

    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: batch * outputSize)
        for b in 0..<batch {
            if let inputTangent { product(parameters[0], im2col(inputTangent, example: b), into: &y, example: b) }
            if !parameterTangents.isEmpty {
                product(parameterTangents[0], columns[b], into: &y, example: b)
                if hasBias { addBias(parameterTangents[1], to: &y, example: b) }
            }
        }
        return y
    }

    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] {
        var gx = [Float](repeating: 0, count: batch * inputSize)
        for b in 0..<batch {
            var col = [Float](repeating: 0, count: rows * positions)
            multiply(parameters[0], .transposed, slice(outputGradientTangent, example: b), .none, m: rows, n: positions, k: outChannels, into: &col)
            if !parameterTangents.isEmpty {
                multiply(parameterTangents[0], .transposed, slice(outputGradient, example: b), .none, m: rows, n: positions, k: outChannels,
                         into: &col, accumulate: true)
            }
            col2im(col, into: &gx, example: b)
        }
        return gx
    }
}

/// 2×2 max pooling with stride 2 on `[B, C, H, W]` (H, W even). Piecewise linear: every pass,
/// tangents included, routes through the position of each window's maximum.
public final class MaxPoolingLayer: SecondOrderLayer {
    public let channels: Int, height: Int, width: Int
    public var inputSize: Int { channels * height * width }
    public var outputSize: Int { channels * (height / 2) * (width / 2) }
    private var winners: [Int] = []
    private var batch = 0

    public init(channels: Int, height: Int, width: Int) {
        precondition(height % 2 == 0 && width % 2 == 0, "2×2 pooling of an even-sized map")
        self.channels = channels; self.height = height; self.width = width
    }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        self.batch = batch
        let oh = height / 2, ow = width / 2
        winners = [Int](repeating: 0, count: batch * outputSize)
        var y = [Float](repeating: 0, count: batch * outputSize)
        for plane in 0..<(batch * channels) { for i in 0..<oh { for j in 0..<ow {
            var best = plane * height * width + 2 * i * width + 2 * j
            for (di, dj) in [(0, 1), (1, 0), (1, 1)] {
                let k = plane * height * width + (2 * i + di) * width + 2 * j + dj
                if input[k] > input[best] { best = k }
            }
            let o = (plane * oh + i) * ow + j
            winners[o] = best
            y[o] = input[best]
        } } }
        return y
    }

    private func scatter(_ g: [Float]) -> [Float] {
        var gx = [Float](repeating: 0, count: batch * inputSize)
        for o in g.indices { gx[winners[o]] += g[o] }
        return gx
    }

    public func backward(_ outputGradient: [Float]) -> [Float] { scatter(outputGradient) }
    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        guard let inputTangent else { return [Float](repeating: 0, count: winners.count) }
        return winners.map { inputTangent[$0] }
    }
    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] { scatter(outputGradientTangent) }
}

/// LeNet-5 in the form most gradient-inversion papers attack (for 1×28×28 or 3×32×32 inputs):
/// conv 5×5 (6, padding 2) → ReLU → max-pool → conv 5×5 (16) → ReLU → max-pool → 120 → ReLU → 84 →
/// ReLU → classes, PyTorch's default initialization from `seed`.
public enum LeNet {
    public static func make(channels: Int, size: Int, classes: Int, seed: UInt64) throws -> GradientMap {
        guard size == 28 || size == 32 else { throw InversionError.unsupportedModel("LeNet takes 28×28 or 32×32 images (got \(size)×\(size))") }
        var initializer = ParameterInitializer(seed: seed)
        let pad = size == 28 ? 2 : 0
        let c1 = ConvolutionLayer(inChannels: channels, outChannels: 6, kernel: 5, padding: pad, height: size, width: size, initializer: &initializer)
        let s1 = c1.outputHeight
        let c2 = ConvolutionLayer(inChannels: 6, outChannels: 16, kernel: 5, padding: 0, height: s1 / 2, width: s1 / 2, initializer: &initializer)
        let s2 = c2.outputHeight
        func dense(_ i: Int, _ o: Int) -> DenseLayer {
            let bound = 1 / Float(i).squareRoot()
            return DenseLayer(weight: initializer.uniform(shape: [o, i], bound: bound).scalars,
                              bias: initializer.uniform(shape: [o], bound: bound).scalars, inputSize: i, outputSize: o)
        }
        let flat = 16 * (s2 / 2) * (s2 / 2)
        let layers: [SecondOrderLayer] = [
            c1, ReLULayer(size: c1.outputSize), MaxPoolingLayer(channels: 6, height: s1, width: s1),
            c2, ReLULayer(size: c2.outputSize), MaxPoolingLayer(channels: 16, height: s2, width: s2),
            dense(flat, 120), ReLULayer(size: 120), dense(120, 84), ReLULayer(size: 84), dense(84, classes),
        ]
        return try GradientMap(layers: layers)
    }
}
