import LinearAlgebra

/// What a training loop needs from any model: the ordered named parameters (what the
/// gradient reducer and the optimizer see), the saved buffers, and exact save/load.
public protocol Model: AnyObject {
    /// A short description used in checkpoint section markers and messages.
    var name: String { get }
    /// Trainable tensors in PyTorch's `parameters()` order (shared tensors listed once).
    var parameters: [Parameter] { get }
    /// Non-trainable saved state (batch-norm running statistics) in `buffers()` order.
    var buffers: [Buffer] { get }
    /// Random-generator state (dropout) and any carried state (LSTM hidden state).
    func saveExtraState(to writer: inout StateWriter)
    func loadExtraState(from reader: inout StateReader) throws
}

extension Model {
    /// Sets every parameter gradient to zero (gradients accumulate over backward passes).
    public func zeroGradients() { for p in parameters { p.zeroGradient() } }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Writes parameters, buffers and extra state, each tensor by bit pattern.
    public func save(to writer: inout StateWriter) {
        writer.write("model:" + name)
        let params = parameters, bufs = buffers
        writer.write(params.count)
        for p in params { writer.write(p.name); writer.write(p.value) }
        writer.write(bufs.count)
        for b in bufs { writer.write(b.name); writer.write(b.value) }
        saveExtraState(to: &writer)
    }

    /// Reads what `save(to:)` wrote; throws naming the first tensor whose name or shape differs.
    public func load(from reader: inout StateReader) throws {
        try reader.expect("model:" + name)
        let params = parameters, bufs = buffers
        let count = try reader.readInt()
        guard count == params.count else {
            throw NeuralNetworkError.stateMismatch("\(count) parameter tensors saved, model '\(name)' has \(params.count)")
        }
        for p in params {
            let savedName = try reader.readString(), value = try reader.readTensor()
            guard savedName == p.name, value.shape == p.value.shape else {
                throw NeuralNetworkError.stateMismatch("saved '\(savedName)' \(value.shape) where '\(p.name)' \(p.value.shape) was expected")
            }
            p.value = value
        }
        let bufferCount = try reader.readInt()
        guard bufferCount == bufs.count else {
            throw NeuralNetworkError.stateMismatch("\(bufferCount) buffers saved, model '\(name)' has \(bufs.count)")
        }
        for b in bufs {
            let savedName = try reader.readString(), value = try reader.readTensor()
            guard savedName == b.name, value.shape == b.value.shape else {
                throw NeuralNetworkError.stateMismatch("saved '\(savedName)' \(value.shape) where '\(b.name)' \(b.value.shape) was expected")
            }
            b.value = value
        }
        try loadExtraState(from: &reader)
    }
}

/// De-duplicates parameters shared by several layers (tied weights), keeping first occurrence.
func uniqueParameters(_ list: [Parameter]) -> [Parameter] {
    var seen = Set<ObjectIdentifier>()
    return list.filter { seen.insert(ObjectIdentifier($0)).inserted }
}
