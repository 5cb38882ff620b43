import Foundation
import LinearAlgebra

/// DP-SGD's per-example clipping on a classifier: Σ_j ḡ_j with ḡ_j = g_j · min(1, C/(‖g_j‖ + 1e-6)),
/// where g_j is the gradient of example j's own loss (Opacus's clip factor, ALGORITHMS.md §8).
///
/// `efficient` needs one forward and one backward over the batch: every layer with parameters is
/// a `PerExampleLayer` (linear: ghost norms from activations and output gradients; convolution:
/// per-example ∂W_j from im2col patches and output gradients; group norm: its per-example sums),
/// which gives each example's squared norms and then the clipped sum. Layers without parameters
/// (flatten, ReLU, pooling, dropout) need nothing. `oneBackwardPerExample` is the reference and
/// the fallback for any other layer: a forward and backward per example. Batch norm in training
/// mode mixes the examples of a batch, so neither applies to it: models with batch norm are
/// refused (`unsupportedReason`), naming the group-norm variant.
public enum PerExampleGradients {
    public enum Method: String, Sendable, CaseIterable {
        case efficient
        case oneBackwardPerExample = "one-backward-per-example"
    }

    /// What clipping did: the mean loss, and every example's gradient norm before clipping.
    public struct ClippedSum: Sendable {
        public var loss: Float
        public var norms: [Float]
    }

    /// Why `model` cannot give per-example gradients (nil when it can): batch norm in training
    /// mode, or a parameter shared by two layers.
    public static func unsupportedReason(_ model: Classifier) -> String? {
        let layers = model.body.allLayers
        if let norm = layers.first(where: { $0 is BatchNorm2d }) {
            return "\(model.name) has batch normalization (\(norm.name)): in training mode it normalizes each example by "
                + "the batch's statistics, so one example's gradient depends on the others and per-example clipping does not "
                + "bound the sensitivity; use its group-norm variant (\(model.name)-gn), as Opacus does"
        }
        let all = layers.flatMap { $0.sublayers.isEmpty ? $0.parameters : [] }
        if all.count != model.parameters.count {
            return "\(model.name) shares parameters between layers"
        }
        return nil
    }

    /// The layers with parameters, in forward order.
    static func parameterLayers(_ model: Classifier) -> [Layer] {
        model.body.allLayers.filter { $0.sublayers.isEmpty && !$0.parameters.isEmpty }
    }

    /// The method `model` supports: efficient when every layer with parameters is a `PerExampleLayer`.
    public static func method(for model: Classifier) -> Method {
        parameterLayers(model).allSatisfy { $0 is PerExampleLayer } ? .efficient : .oneBackwardPerExample
    }

    /// Leaves Σ_j ḡ_j in every parameter's gradient (replacing what was there). With `perLayer`,
    /// each of the P parameter tensors is clipped to C/√P on its own, which keeps the flat norm ≤ C.
    public static func clippedSum(_ model: Classifier, input: Tensor, labels: [Int], clip: Float, perLayer: Bool,
                                  method: Method? = nil) throws -> ClippedSum {
        if let reason = unsupportedReason(model) { throw NeuralNetworkError.invalidConfiguration(reason) }
        switch method ?? Self.method(for: model) {
        case .efficient: return try efficientClippedSum(model, input: input, labels: labels, clip: clip, perLayer: perLayer)
        case .oneBackwardPerExample: return try loopClippedSum(model, input: input, labels: labels, clip: clip, perLayer: perLayer)
        }
    }

    /// Clip factors: scales[p][j] for parameter p and example j, from squared norms [p][j].
    static func clipFactors(squaredNorms: [[Double]], clip: Float, perLayer: Bool) -> (scales: [[Float]], norms: [Float]) {
        let examples = squaredNorms.first?.count ?? 0
        let flat = (0..<examples).map { j in squaredNorms.reduce(0) { $0 + $1[j] }.squareRoot() }
        let c = Double(clip)
        if perLayer {
            let each = c / Double(squaredNorms.count).squareRoot()
            let scales = squaredNorms.map { row in row.map { Float(min(1, each / ($0.squareRoot() + 1e-6))) } }
            return (scales, flat.map(Float.init))
        }
        let factors = flat.map { Float(min(1, c / ($0 + 1e-6))) }
        return (squaredNorms.map { _ in factors }, flat.map(Float.init))
    }

    static func efficientClippedSum(_ model: Classifier, input: Tensor, labels: [Int], clip: Float, perLayer: Bool) throws -> ClippedSum {
        let layers = try parameterLayers(model).map { layer in
            guard let l = layer as? PerExampleLayer else {
                throw NeuralNetworkError.invalidConfiguration("\(layer.name) has no per-example gradients: use one-backward-per-example")
            }
            return l
        }
        for l in layers { l.recordsPerExample(true) }
        defer { for l in layers { l.recordsPerExample(false) } }
        let n = labels.count
        let logits = try model.forward(input, training: true)
        var (loss, gradient) = try SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels)
        // The gradient of the mean loss is 1/n of the per-example ones: scale to the sum.
        gradient.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= Float(n) } }
        try model.backward(gradient)

        // Squared norms per parameter, layer by layer (the model's parameter order).
        let gradients = try layers.map { try $0.exampleGradients(examples: n) }
        let (scales, norms) = clipFactors(squaredNorms: gradients.flatMap(\.squaredNorms), clip: clip, perLayer: perLayer)
        model.zeroGradients()
        var first = 0
        for layer in gradients {
            let count = layer.squaredNorms.count
            layer.addClippedSum(scales[first..<(first + count)])
            first += count
        }
        return ClippedSum(loss: loss, norms: norms)
    }

    /// The reference: one forward and backward per example, its gradient clipped and added.
    static func loopClippedSum(_ model: Classifier, input: Tensor, labels: [Int], clip: Float, perLayer: Bool) throws -> ClippedSum {
        let size = input.count / max(1, labels.count)
        return try loopClippedSum(model.parameters, examples: labels.count, clip: clip, perLayer: perLayer) { j in
            var single = Tensor(shape: [1] + Array(input.shape.dropFirst()))
            single.withMutablePointer { s in input.withPointer { s.update(from: $0 + j * size, count: size) } }
            return try model.lossAndGradients(input: single, labels: [labels[j]])
        }
    }

    /// One backward pass per example, for any model: `backward(j)` adds example j's gradient (of
    /// its own loss) into `parameters`' zeroed gradients and returns that loss. Leaves the clipped
    /// sum in the gradients; the loss returned is the mean over the examples.
    public static func loopClippedSum(_ parameters: [Parameter], examples n: Int, clip: Float, perLayer: Bool,
                                      backward: (Int) throws -> Float) throws -> ClippedSum {
        var sums = parameters.map { Tensor(shape: $0.shape) }
        var norms: [Float] = []
        var totalLoss: Float = 0
        for j in 0..<n {
            for p in parameters { p.zeroGradient() }
            totalLoss += try backward(j)
            let squared = parameters.map { p in [rowSquaredNorms(p.gradient, columns: p.gradient.count)[0]] }
            let (scales, exampleNorms) = clipFactors(squaredNorms: squared, clip: clip, perLayer: perLayer)
            norms.append(exampleNorms[0])
            for (k, p) in parameters.enumerated() {
                let c = scales[k][0]
                sums[k].withMutablePointer { s in p.gradient.withPointer { g in for i in 0..<p.gradient.count { s[i] += c * g[i] } } }
            }
        }
        for (p, s) in zip(parameters, sums) { p.gradient = s }
        return ClippedSum(loss: totalLoss / Float(max(1, n)), norms: norms)
    }

    static func rowSquaredNorms(_ m: Tensor, columns: Int) -> [Double] {
        let rows = m.count / columns
        return m.withPointer { p in
            (0..<rows).map { r in
                var s: Double = 0
                let row = p + r * columns
                for i in 0..<columns { s += Double(row[i]) * Double(row[i]) }
                return s
            }
        }
    }

    /// `p.gradient += wᵀ·M` for a row-major `[B, columns]` matrix M of per-example gradients.
    static func addWeightedRows(_ m: Tensor, columns: Int, weights: [Float], into p: Parameter) {
        m.withPointer { mp in
            weights.withUnsafeBufferPointer { w in
                p.gradient.withMutablePointer { g in
                    sgemm(.none, .none, m: 1, n: columns, k: weights.count, a: w.baseAddress!, lda: weights.count,
                          b: mp, ldb: columns, beta: 1, c: g, ldc: columns)
                }
            }
        }
    }

    static func scaledRows(_ m: Tensor, columns: Int, by factors: [Float]) -> Tensor {
        var out = m
        out.withMutablePointer { p in
            for (r, c) in factors.enumerated() where c != 1 {
                let row = p + r * columns
                for i in 0..<columns { row[i] *= c }
            }
        }
        return out
    }
}
