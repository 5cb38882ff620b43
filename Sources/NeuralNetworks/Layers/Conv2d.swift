import COneDNNConvolution
import LinearAlgebra

/// 2-D convolution (cross-correlation, as PyTorch's `nn.Conv2d`) on channel-major
/// `[C, B, H, W]` inputs, producing `[O, B, H', W']` with `H' = (H + 2p − k)/s + 1`.
///
/// Lowered to matrix products (im2col): the patches of a block of images form
/// `col[C·k·k, n]` (row `(c, ky, kx)`, column `(b, y', x')`), and
/// - forward:  `Y[:, block] = W[O, C·k·k] · col`,
/// - backward: `∂W += ∂Y[:, block] · colᵀ`, `∂col = Wᵀ · ∂Y[:, block]`, then col2im adds
///   `∂col` back onto `∂X` (the adjoint of im2col).
/// Blocks of whole images keep `col` within `workspace.limit` floats so it stays in cache
/// between the copy and the product; because the layout is channel-major, each block's
/// output is a column range of `Y` (leading dimension `B·H'·W'`) and needs no transpose.
/// A 1×1 stride-1 unpadded convolution multiplies the input directly, without im2col.
/// That is the `im2col` implementation; the default is oneDNN's (`ConvolutionImplementation`),
/// tested against this one.
public final class Conv2d: Layer {
    public let name: String
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// False for a network's first layer: its input gradient is never used, so backward skips
    /// `∂col` and col2im and returns zeros.
    public var computesInputGradient = true
    /// Intra-op threads: oneDNN's, or im2col/col2im's (whose products use BLAS's own threads).
    public var threads: Int
    public var implementation: ConvolutionImplementation = .default
    /// oneDNN's primitives per input geometry (a training batch, a last partial batch, an
    /// evaluation batch).
    private var oneDNNConvolutions: [OneDNNConvolution.Key: OneDNNConvolution] = [:]
    let workspace: ConvolutionWorkspace
    private(set) var cachedInput: Tensor?
    /// Per-example mode (DP-SGD, `PerExampleGradients`): backward keeps ∂loss/∂output for the
    /// per-example gradients and adds nothing to the parameter gradients.
    var recordsOutputGradient = false
    var recordedOutputGradient: Tensor?
    /// The shape of the last input seen by `forward` (for FLOP accounting).
    public private(set) var lastInputShape: [Int]?

    /// Floating-point operations of one forward + backward pass on `inputShape`: each of the
    /// three products (Y, ∂W, ∂X) costs 2·O·(C·k·k)·(B·H'·W'); ∂X is skipped for a first layer.
    public func trainingFlops(inputShape: [Int]) -> Double {
        let columns = Double(inputShape[1] * outputExtent(inputShape[2]) * outputExtent(inputShape[3]))
        let product = 2 * Double(outChannels) * Double(patchSize) * columns
        return product * (computesInputGradient ? 3 : 2)
    }

    public init(name: String, inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1,
                padding: Int = 0, bias: Bool = false, initializer: inout ParameterInitializer,
                workspace: ConvolutionWorkspace = ConvolutionWorkspace(), threads: Int = 1) {
        self.name = name
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.workspace = workspace
        self.threads = threads
        let fanIn = inChannels * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(name: qualified(name, "weight"),
                           value: initializer.uniform(shape: [outChannels, inChannels, kernelSize, kernelSize],
                                                      bound: bound),
                           isNormalizationOrBias: false)
        self.bias = bias ? Parameter(name: qualified(name, "bias"),
                                     value: initializer.uniform(shape: [outChannels], bound: bound),
                                     isNormalizationOrBias: true) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// Output height or width for an input extent.
    public func outputExtent(_ extent: Int) -> Int { (extent + 2 * padding - kernelSize) / stride + 1 }

    var patchSize: Int { inChannels * kernelSize * kernelSize }
    var isPointwise: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    func geometry(_ shape: [Int]) -> ConvolutionGeometry {
        ConvolutionGeometry(channels: inChannels, batch: shape[1], height: shape[2], width: shape[3],
                            kernel: kernelSize, stride: stride, padding: padding,
                            outHeight: outputExtent(shape[2]), outWidth: outputExtent(shape[3]))
    }

    /// Images per im2col block: as many as fit in the workspace limit (at least one).
    func imagesPerBlock(_ g: ConvolutionGeometry) -> Int {
        max(1, min(g.batch, workspace.limit / max(1, patchSize * g.outHeight * g.outWidth)))
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let s = input.shape
        guard s.count == 4, s[0] == inChannels, s[1] > 0,
              s[2] + 2 * padding >= kernelSize, s[3] + 2 * padding >= kernelSize else {
            throw NeuralNetworkError.inputShape(
                layer: name, expected: "[\(inChannels), B, H, W] (channel-major, H and W ≥ \(kernelSize - 2 * padding))",
                got: s)
        }
        let g = geometry(s)
        lastInputShape = s
        let columns = g.batch * g.outPlane
        // Every element is written (β = 0 products, or oneDNN's reorder), so the storage starts uninitialized.
        var output = Tensor.filled(shape: [outChannels, g.batch, g.outHeight, g.outWidth]) { _, _ in }
        let convolution = implementation == .oneDNN ? try oneDNNConvolution(g) : nil
        try output.withMutablePointer { y in
            try input.withPointer { x in
                try weight.value.withPointer { w in
                    if let convolution {
                        try convolution.forward(workspace, input: x, weight: w, output: y)
                    } else {
                        forwardByIm2col(x, w, y, g)
                    }
                }
            }
            if let bias {
                bias.value.withPointer { bp in
                    for o in 0..<outChannels {
                        let row = y + o * columns, v = bp[o]
                        for i in 0..<columns { row[i] += v }
                    }
                }
            }
        }
        cachedInput = training ? input : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let input = cachedInput else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        let g = geometry(input.shape)
        let expected = [outChannels, g.batch, g.outHeight, g.outWidth]
        guard outputGradient.shape == expected else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(expected)",
                                                got: outputGradient.shape)
        }
        let columns = g.batch * g.outPlane
        var inputGradient = Tensor(shape: input.shape)
        let wantInput = computesInputGradient, wantWeight = !recordsOutputGradient
        if recordsOutputGradient { recordedOutputGradient = outputGradient }
        let convolution = implementation == .oneDNN ? try oneDNNConvolution(g) : nil
        try outputGradient.withPointer { dy in
            if wantWeight, let bias {
                bias.gradient.withMutablePointer { db in
                    for o in 0..<outChannels { db[o] += Vector.sum(UnsafeBufferPointer(start: dy + o * columns, count: columns)) }
                }
            }
            try input.withPointer { x in
                try inputGradient.withMutablePointer { dx in
                    try weight.value.withPointer { w in
                        try weight.gradient.withMutablePointer { dw in
                            if let convolution {
                                try convolution.backward(workspace, input: x, weight: w, outputGradient: dy,
                                                         weightGradient: wantWeight ? dw : nil,
                                                         inputGradient: wantInput ? dx : nil)
                            } else {
                                backwardByIm2col(x, w, dy, wantWeight ? dw : nil, wantInput ? dx : nil, g)
                            }
                        }
                    }
                }
            }
        }
        return inputGradient
    }

    /// What computes this layer's products on an input shape: oneDNN's kernels (forward; backward
    /// data; backward weights, e.g. "jit:avx512_core; ...") or "im2col + sgemm".
    public func kernelDescription(inputShape: [Int]) throws -> String {
        implementation == .oneDNN ? try oneDNNConvolution(geometry(inputShape)).implementation : "im2col + sgemm"
    }

    private func oneDNNConvolution(_ g: ConvolutionGeometry) throws -> OneDNNConvolution {
        let key = OneDNNConvolution.Key(batch: g.batch, height: g.height, width: g.width, threads: max(1, threads))
        if let known = oneDNNConvolutions[key] { return known }
        // A few geometries recur (training, last partial and evaluation batches); more means
        // varying batches, where keeping them all would only hold memory.
        if oneDNNConvolutions.count >= 4 { oneDNNConvolutions.removeAll() }
        let created = try OneDNNConvolution(layer: self, key: key)
        oneDNNConvolutions[key] = created
        return created
    }

    // MARK: The im2col implementation

    private func forwardByIm2col(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                 _ g: ConvolutionGeometry) {
        let columns = g.batch * g.outPlane
        forEachImageBlock(g) { b0, nb, n in
            if isPointwise {
                sgemm(.none, .none, m: outChannels, n: n, k: patchSize, a: w, lda: patchSize,
                      b: x + b0 * g.plane, ldb: columns, c: y + b0 * g.outPlane, ldc: columns)
            } else {
                let col = workspace.buffer(count: patchSize * n)
                Im2col.gather(x, g, firstImage: b0, images: nb, into: col, threads: threads)
                sgemm(.none, .none, m: outChannels, n: n, k: patchSize, a: w, lda: patchSize,
                      b: col, ldb: n, c: y + b0 * g.outPlane, ldc: columns)
            }
        }
    }

    /// dw += ∂W (if given) and dx = ∂X (if given; `dx` starts at zero).
    private func backwardByIm2col(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                  _ dw: UnsafeMutablePointer<Float>?, _ dx: UnsafeMutablePointer<Float>?,
                                  _ g: ConvolutionGeometry) {
        let columns = g.batch * g.outPlane
        forEachImageBlock(g) { b0, nb, n in
            let dyBlock = dy + b0 * g.outPlane
            if isPointwise {
                if let dw {
                    sgemm(.none, .transposed, m: outChannels, n: patchSize, k: n,
                          a: dyBlock, lda: columns, b: x + b0 * g.plane, ldb: columns,
                          beta: 1, c: dw, ldc: patchSize)
                }
                if let dx {
                    sgemm(.transposed, .none, m: patchSize, n: n, k: outChannels,
                          a: w, lda: patchSize, b: dyBlock, ldb: columns,
                          c: dx + b0 * g.plane, ldc: columns)
                }
            } else {
                let col = workspace.buffer(count: patchSize * n)
                if let dw {
                    Im2col.gather(x, g, firstImage: b0, images: nb, into: col, threads: threads)
                    sgemm(.none, .transposed, m: outChannels, n: patchSize, k: n,
                          a: dyBlock, lda: columns, b: col, ldb: n, beta: 1, c: dw, ldc: patchSize)
                }
                if let dx {
                    // The patches are no longer needed: reuse the buffer for ∂col.
                    sgemm(.transposed, .none, m: patchSize, n: n, k: outChannels,
                          a: w, lda: patchSize, b: dyBlock, ldb: columns, c: col, ldc: n)
                    Im2col.scatterAdd(col, g, firstImage: b0, images: nb, into: dx, threads: threads)
                }
            }
        }
    }

    /// Runs `body(firstImage, images, columns)` over blocks of whole images that fit the
    /// workspace limit (`columns` = images · H'·W').
    func forEachImageBlock(_ g: ConvolutionGeometry, _ body: (Int, Int, Int) -> Void) {
        let perBlock = imagesPerBlock(g)
        var b0 = 0
        while b0 < g.batch {
            let nb = min(perBlock, g.batch - b0)
            body(b0, nb, nb * g.outPlane)
            b0 += nb
        }
    }
}

/// Growable scratch buffers shared by the convolutions of one model (they run one at a time),
/// so a training step allocates them once: im2col's patches, and oneDNN's blocked operands and
/// scratchpad.
public final class ConvolutionWorkspace: @unchecked Sendable {
    /// The largest patch block in floats (a block always holds at least one image).
    public let limit: Int
    private var storage: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var oneDNNBuffers: OpaquePointer?

    public init(limit: Int = 1 << 21) { self.limit = limit }

    deinit {
        storage?.deallocate()
        onednn_workspace_destroy(oneDNNBuffers)
    }

    var oneDNN: OpaquePointer {
        if let oneDNNBuffers { return oneDNNBuffers }
        let created = onednn_workspace_create()!
        oneDNNBuffers = created
        return created
    }

    func buffer(count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            storage?.deallocate()
            storage = UnsafeMutablePointer<Float>.allocate(capacity: count)
            capacity = count
        }
        return storage!
    }
}
