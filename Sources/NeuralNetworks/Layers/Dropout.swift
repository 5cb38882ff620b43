import LinearAlgebra

/// Inverted dropout: in training each element is kept with probability 1 − p and scaled by
/// 1/(1 − p), so evaluation is the identity. Masks come from a seeded `Xoshiro256` stream
/// owned by the layer; its state is saved with the model, so a restored run draws the same
/// masks as an uninterrupted one.
public final class Dropout: Layer {
    public let name: String
    public let probability: Float
    private var generator: Xoshiro256
    private var mask: Tensor?

    public init(name: String = "dropout", probability: Float, seed: UInt64) throws {
        guard probability >= 0, probability < 1 else {
            throw NeuralNetworkError.invalidConfiguration("layer '\(name)': dropout probability \(probability) is outside [0, 1)")
        }
        self.name = name
        self.probability = probability
        self.generator = Xoshiro256(seed: seed, stream: 0xD0)
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard training, probability > 0 else { mask = nil; return input }
        let keep = 1 - probability, scale = 1 / keep
        var m = Tensor(shape: input.shape)
        m.withUnsafeMutableBufferPointer { buffer in
            generator.fillUniform(buffer)
            for i in buffer.indices { buffer[i] = buffer[i] < keep ? scale : 0 }
        }
        mask = m
        return Dropout.multiply(input, m)
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let m = mask else { return outputGradient }
        guard outputGradient.shape == m.shape else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(m.shape)", got: outputGradient.shape)
        }
        return Dropout.multiply(outputGradient, m)
    }

    static func multiply(_ a: Tensor, _ b: Tensor) -> Tensor {
        a.withPointer { ap in
            b.withPointer { bp in
                Tensor.filled(shape: a.shape) { y, n in for i in 0..<n { y[i] = ap[i] * bp[i] } }
            }
        }
    }

    public func saveRandomState(to writer: inout StateWriter) {
        for i in 0..<4 { writer.write(Int(Int64(bitPattern: generator.state[i]))) }
    }

    public func loadRandomState(from reader: inout StateReader) throws {
        for i in 0..<4 { generator.state[i] = UInt64(bitPattern: Int64(try reader.readInt())) }
    }
}
