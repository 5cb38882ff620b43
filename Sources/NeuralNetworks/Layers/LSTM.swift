import LinearAlgebra

/// One LSTM layer over a whole sequence, PyTorch's gate order (i, f, g, o):
///
///     a_t = x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh          [B, 4H]
///     i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
///     c_t = f ⊙ c_{t−1} + i ⊙ g;   h_t = o ⊙ tanh(c_t)
///
/// The input projection of all T steps is one product `X[T·B, In]·W_ihᵀ`; each step adds
/// `h_{t−1}·W_hhᵀ`. Backpropagation through time runs t = T−1 … 0 with
/// ∂c_t = ∂c_{t+1}⊙f_{t+1} + ∂h_t⊙o⊙(1 − tanh²c_t), then
/// ∂a_i = ∂c⊙g⊙i(1−i), ∂a_f = ∂c⊙c_{t−1}⊙f(1−f), ∂a_g = ∂c⊙i⊙(1−g²), ∂a_o = ∂h⊙tanh c⊙o(1−o),
/// ∂h_{t−1} += ∂a_t·W_hh; the weight gradients are then two products over all steps
/// (`∂W_hh += ∂Aᵀ·H_prev`, `∂W_ih += ∂Aᵀ·X`). The initial state (h₀, c₀) is the final state
/// of the previous sequence, carried over and *detached*: no gradient flows into it.
final class LSTMLayer {
    let inputSize: Int
    let hiddenSize: Int
    let weightIH: Parameter, weightHH: Parameter, biasIH: Parameter, biasHH: Parameter

    /// Carried state [B, H] (empty until the first sequence or after `resetState`).
    var hidden: [Float] = []
    var cell: [Float] = []
    var stateBatch = 0

    // Cache of the last training forward pass.
    private var input: Tensor?
    private var steps = 0, batch = 0
    private var gates: [Float] = []      // activated gates [T, B, 4H]
    private var hiddens: [Float] = []    // h_0 … h_T  [T+1, B, H]
    private var cells: [Float] = []      // c_0 … c_T  [T+1, B, H]
    private var tanhCells: [Float] = []  // tanh(c_1 … c_T) [T, B, H]

    init(prefix: String, layer: Int, inputSize: Int, hiddenSize: Int, initializer: inout ParameterInitializer) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        let bound = 1 / Float(hiddenSize).squareRoot()
        let g = 4 * hiddenSize
        weightIH = Parameter(name: qualified(prefix, "weight_ih_l\(layer)"),
                             value: initializer.uniform(shape: [g, inputSize], bound: bound), isNormalizationOrBias: false)
        weightHH = Parameter(name: qualified(prefix, "weight_hh_l\(layer)"),
                             value: initializer.uniform(shape: [g, hiddenSize], bound: bound), isNormalizationOrBias: false)
        biasIH = Parameter(name: qualified(prefix, "bias_ih_l\(layer)"),
                           value: initializer.uniform(shape: [g], bound: bound), isNormalizationOrBias: true)
        biasHH = Parameter(name: qualified(prefix, "bias_hh_l\(layer)"),
                           value: initializer.uniform(shape: [g], bound: bound), isNormalizationOrBias: true)
    }

    var parameters: [Parameter] { [weightIH, weightHH, biasIH, biasHH] }

    func resetState() { hidden = []; cell = []; stateBatch = 0 }

    /// `input [T, B, In]` → `[T, B, H]`.
    func forward(_ x: Tensor, training: Bool) -> Tensor {
        let t = x.shape[0], b = x.shape[1], h = hiddenSize, g = 4 * h
        if stateBatch != b {
            hidden = [Float](repeating: 0, count: b * h)
            cell = [Float](repeating: 0, count: b * h)
            stateBatch = b
        }
        var a = [Float](repeating: 0, count: t * b * g)
        var hs = [Float](repeating: 0, count: (t + 1) * b * h)
        var cs = [Float](repeating: 0, count: (t + 1) * b * h)
        var tcs = [Float](repeating: 0, count: t * b * h)
        let rows = t * b
        a.withUnsafeMutableBufferPointer { ab in
            let ap = ab.baseAddress!
            biasIH.value.withPointer { bi in
                biasHH.value.withPointer { bh in
                    for j in 0..<g { ap[j] = bi[j] + bh[j] }
                    for r in 1..<max(1, rows) { (ap + r * g).update(from: ap, count: g) }
                }
            }
            x.withPointer { xp in
                weightIH.value.withPointer { w in
                    sgemm(.none, .transposed, m: rows, n: g, k: inputSize, a: xp, lda: inputSize, b: w, ldb: inputSize,
                          beta: 1, c: ap, ldc: g)
                }
            }
            hs.withUnsafeMutableBufferPointer { hb in
                cs.withUnsafeMutableBufferPointer { cb in
                    tcs.withUnsafeMutableBufferPointer { tb in
                        let hp = hb.baseAddress!, cp = cb.baseAddress!, tp = tb.baseAddress!
                        hidden.withUnsafeBufferPointer { hp.update(from: $0.baseAddress!, count: b * h) }
                        cell.withUnsafeBufferPointer { cp.update(from: $0.baseAddress!, count: b * h) }
                        weightHH.value.withPointer { whh in
                            for step in 0..<t {
                                let at = ap + step * b * g
                                let hPrev = hp + step * b * h, cPrev = cp + step * b * h
                                let hNext = hp + (step + 1) * b * h, cNext = cp + (step + 1) * b * h
                                let tc = tp + step * b * h
                                sgemm(.none, .transposed, m: b, n: g, k: h, a: hPrev, lda: h, b: whh, ldb: h,
                                      beta: 1, c: at, ldc: g)
                                for row in 0..<b {
                                    let ar = at + row * g
                                    LSTMLayer.activate(ar, h)
                                    let o = row * h
                                    for j in 0..<h {
                                        cNext[o + j] = ar[h + j] * cPrev[o + j] + ar[j] * ar[2 * h + j]
                                    }
                                    for j in 0..<h { tc[o + j] = FastMath.tanh(cNext[o + j]) }
                                    for j in 0..<h { hNext[o + j] = ar[3 * h + j] * tc[o + j] }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Carry the final state to the next sequence, detached.
        hidden = Array(hs[(t * b * h)...])
        cell = Array(cs[(t * b * h)...])
        let output = hs.withUnsafeBufferPointer { hb in
            Tensor.filled(shape: [t, b, h]) { y, n in y.update(from: hb.baseAddress! + b * h, count: n) }
        }
        if training {
            input = x; steps = t; batch = b
            gates = a; hiddens = hs; cells = cs; tanhCells = tcs
        } else {
            input = nil
        }
        return output
    }

    /// ∂loss/∂output `[T, B, H]` → ∂loss/∂input `[T, B, In]`; accumulates the four parameter gradients.
    func backward(_ outputGradient: Tensor) -> Tensor? {
        guard let x = input else { return nil }
        let t = steps, b = batch, h = hiddenSize, g = 4 * h, rows = t * b
        var dA = [Float](repeating: 0, count: rows * g)
        var dhNext = [Float](repeating: 0, count: b * h)
        var dcNext = [Float](repeating: 0, count: b * h)
        var inputGradient = Tensor(shape: [t, b, inputSize])
        dA.withUnsafeMutableBufferPointer { dab in
            let dap = dab.baseAddress!
            gates.withUnsafeBufferPointer { gb in
            cells.withUnsafeBufferPointer { cb in
            tanhCells.withUnsafeBufferPointer { tb in
            dhNext.withUnsafeMutableBufferPointer { dhb in
            dcNext.withUnsafeMutableBufferPointer { dcb in
            outputGradient.withPointer { dy in
            weightHH.value.withPointer { whh in
                let gp = gb.baseAddress!, cp = cb.baseAddress!, tp = tb.baseAddress!
                let dh = dhb.baseAddress!, dc = dcb.baseAddress!
                for step in stride(from: t - 1, through: 0, by: -1) {
                    let at = gp + step * b * g, dat = dap + step * b * g
                    let cPrev = cp + step * b * h, tc = tp + step * b * h, dyt = dy + step * b * h
                    for row in 0..<b {
                        let ar = at + row * g, dar = dat + row * g, o = row * h
                        for j in 0..<h {
                            let i = ar[j], f = ar[h + j], gg = ar[2 * h + j], og = ar[3 * h + j]
                            let tanhC = tc[o + j]
                            let dhj = dyt[o + j] + dh[o + j]
                            let dcj = dc[o + j] + dhj * og * (1 - tanhC * tanhC)
                            dar[j] = dcj * gg * i * (1 - i)
                            dar[h + j] = dcj * cPrev[o + j] * f * (1 - f)
                            dar[2 * h + j] = dcj * i * (1 - gg * gg)
                            dar[3 * h + j] = dhj * tanhC * og * (1 - og)
                            dc[o + j] = dcj * f
                        }
                    }
                    if step > 0 {
                        sgemm(.none, .none, m: b, n: h, k: g, a: dat, lda: g, b: whh, ldb: h, c: dh, ldc: h)
                    }
                }
            }
            }
            }
            }
            }
            }
            }
            // Weight gradients over all steps at once.
            hiddens.withUnsafeBufferPointer { hb in
                weightHH.gradient.withMutablePointer { dw in
                    sgemm(.transposed, .none, m: g, n: h, k: rows, a: dap, lda: g, b: hb.baseAddress!, ldb: h,
                          beta: 1, c: dw, ldc: h)
                }
            }
            x.withPointer { xp in
                weightIH.gradient.withMutablePointer { dw in
                    sgemm(.transposed, .none, m: g, n: inputSize, k: rows, a: dap, lda: g, b: xp, ldb: inputSize,
                          beta: 1, c: dw, ldc: inputSize)
                }
            }
            biasIH.gradient.withMutablePointer { db in columnSums(dap, rows: rows, columns: g, into: db) }
            biasHH.gradient.withMutablePointer { db in columnSums(dap, rows: rows, columns: g, into: db) }
            inputGradient.withMutablePointer { dx in
                weightIH.value.withPointer { w in
                    sgemm(.none, .none, m: rows, n: inputSize, k: g, a: dap, lda: g, b: w, ldb: inputSize,
                          c: dx, ldc: inputSize)
                }
            }
        }
        return inputGradient
    }

    /// Gate pre-activations → activations in place: σ on i, f, o; tanh on g.
    @inline(__always)
    static func activate(_ a: UnsafeMutablePointer<Float>, _ h: Int) {
        for j in 0..<(2 &* h) { a[j] = FastMath.sigmoid(a[j]) }
        let g = a + 2 &* h
        for j in 0..<h { g[j] = FastMath.tanh(g[j]) }
        let o = a + 3 &* h
        for j in 0..<h { o[j] = FastMath.sigmoid(o[j]) }
    }
}

/// A stack of LSTM layers (PyTorch's `nn.LSTM(input, hidden, layers, dropout: p)`): dropout
/// on the output of every layer but the last, in training only. Parameters are named and
/// ordered as PyTorch's: `weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, …_l1, …`.
public final class LSTM {
    public let name: String
    public let inputSize: Int
    public let hiddenSize: Int
    let layers: [LSTMLayer]
    let dropouts: [Dropout]

    public init(name: String, inputSize: Int, hiddenSize: Int, layers: Int, dropout: Float = 0,
                initializer: inout ParameterInitializer) throws {
        guard layers >= 1, inputSize >= 1, hiddenSize >= 1 else {
            throw NeuralNetworkError.invalidConfiguration(
                "LSTM '\(name)': needs at least one layer and positive sizes (got \(layers) layers, input \(inputSize), hidden \(hiddenSize))")
        }
        self.name = name
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        var stack: [LSTMLayer] = []
        for l in 0..<layers {
            stack.append(LSTMLayer(prefix: name, layer: l, inputSize: l == 0 ? inputSize : hiddenSize,
                                   hiddenSize: hiddenSize, initializer: &initializer))
        }
        self.layers = stack
        var drops: [Dropout] = []
        for l in 0..<(layers - 1) {
            drops.append(try Dropout(name: qualified(name, "dropout\(l)"), probability: dropout,
                                     seed: initializer.derivedSeed()))
        }
        self.dropouts = drops
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Forgets the carried hidden and cell state (the next sequence starts from zeros).
    public func resetState() { layers.forEach { $0.resetState() } }

    /// `[T, B, In]` → `[T, B, H]`. The final state is kept for the next call (detached).
    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.shape.count == 3, input.shape[2] == inputSize, input.shape[0] > 0, input.shape[1] > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[T, B, \(inputSize)]", got: input.shape)
        }
        var x = input
        for (l, layer) in layers.enumerated() {
            x = layer.forward(x, training: training)
            if l < dropouts.count { x = try dropouts[l].forward(x, training: training) }
        }
        return x
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        var g = outputGradient
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            if l < dropouts.count { g = try dropouts[l].backward(g) }
            guard let next = layers[l].backward(g) else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
            g = next
        }
        return g
    }

    func saveRandomState(to writer: inout StateWriter) { dropouts.forEach { $0.saveRandomState(to: &writer) } }
    func loadRandomState(from reader: inout StateReader) throws {
        for d in dropouts { try d.loadRandomState(from: &reader) }
    }

    /// The carried (h, c) of each layer, for checkpoints.
    func saveCarriedState(to writer: inout StateWriter) {
        for layer in layers {
            writer.write(layer.stateBatch)
            writer.write(layer.hidden)
            writer.write(layer.cell)
        }
    }

    func loadCarriedState(from reader: inout StateReader) throws {
        for layer in layers {
            let b = try reader.readInt()
            let h = try reader.readFloats(), c = try reader.readFloats()
            guard h.count == b * hiddenSize, c.count == b * hiddenSize else {
                throw NeuralNetworkError.stateMismatch("LSTM '\(name)' carried state has \(h.count) values for batch \(b), hidden \(hiddenSize)")
            }
            layer.stateBatch = b; layer.hidden = h; layer.cell = c
        }
    }
}
