import LinearAlgebra

/// Reports, during one backward pass, each parameter as soon as its gradient is final: the hook
/// that lets a data-parallel step start reducing the last layers' gradients while backward is
/// still busy with the first ones (PyTorch DDP's autograd hooks, Li et al., "PyTorch
/// Distributed", VLDB 2020, §3.2.3).
///
/// A gradient is final once every layer that uses the parameter has run its backward. Each
/// parameter starts with the number of layers using it (a tied weight — the LSTM language
/// model's shared embedding and decoder matrix — has two, and is final only after its last use,
/// the embedding's backward, which runs last); a layer's finished backward takes one use off each
/// of its parameters, and a parameter reaching zero is reported, with its index in the model's
/// `parameters` list. Within a layer the parameters are reported in reverse registration order, so
/// for the models here (`Sequential`, `BasicBlock`, `LSTMLanguageModel`) the whole pass reports the
/// indices in reverse order, every one exactly once.
public final class GradientReadiness {
    private let indices: [ObjectIdentifier: Int]
    private var remainingUses: [Int]
    private let onReady: (Int) -> Void

    /// `parameters`: the model's list (each once); `uses`: every layer's parameters, a shared one
    /// listed once per layer using it.
    public init(parameters: [Parameter], uses: [Parameter], onReady: @escaping (Int) -> Void) {
        var indices: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() { indices[ObjectIdentifier(p)] = i }
        var remaining = [Int](repeating: 0, count: parameters.count)
        for p in uses { if let i = indices[ObjectIdentifier(p)] { remaining[i] += 1 } }
        self.indices = indices
        self.remainingUses = remaining
        self.onReady = onReady
    }

    /// A layer whose parameters are `used` finished its backward.
    public func finished(_ used: [Parameter]) {
        for p in used.reversed() {
            guard let i = indices[ObjectIdentifier(p)], remainingUses[i] > 0 else { continue }
            remainingUses[i] -= 1
            if remainingUses[i] == 0 { onReady(i) }
        }
    }

    /// Ends the pass: reports, in reverse order, any parameter no layer's backward used (its
    /// gradient is final too), so every index is reported exactly once.
    public func finishPass() {
        for i in remainingUses.indices.reversed() where remainingUses[i] > 0 {
            remainingUses[i] = 0
            onReady(i)
        }
    }

    /// `layer.backward(outputGradient)`, reporting through `readiness` (nil: no reports): a
    /// `ReportingBackward` layer reports its parts itself, any other layer all its parameters
    /// once its backward returns.
    public static func backward(_ layer: Layer, _ outputGradient: Tensor, reporting readiness: GradientReadiness?) throws -> Tensor {
        guard let readiness else { return try layer.backward(outputGradient) }
        if let composite = layer as? ReportingBackward { return try composite.backward(outputGradient, reporting: readiness) }
        let inputGradient = try layer.backward(outputGradient)
        readiness.finished(layer.parameters)
        return inputGradient
    }
}

/// A layer made of others whose backward reports each part's parameters as they become final
/// (`GradientReadiness`), instead of all of them at its end.
public protocol ReportingBackward: Layer {
    func backward(_ outputGradient: Tensor, reporting readiness: GradientReadiness?) throws -> Tensor
}
