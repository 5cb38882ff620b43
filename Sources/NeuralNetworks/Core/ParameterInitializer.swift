import LinearAlgebra

/// Draws initial parameter values from Philox keyed by the model seed, so a model built from
/// the same seed is bit-identical on every worker, thread and run.
///
/// Each tensor drawn gets the next stream number (`Philox.stream(0x1417, index)`): the
/// values depend only on the seed and the tensor's position in construction order.
/// Distributions follow PyTorch's defaults:
/// - conv/linear weights: `kaiming_uniform_(a = √5)`, i.e. gain √(2/(1+a²)) = √(1/3) and
///   bound gain·√(3/fan_in) = 1/√fan_in;
/// - conv/linear biases: U(−1/√fan_in, 1/√fan_in);
/// - LSTM weights and biases: U(−1/√H, 1/√H);
/// - embedding: N(0, 1) (or U(−0.1, 0.1) in the word-language-model recipe).
public struct ParameterInitializer {
    public let seed: UInt64
    private var index: UInt64 = 0

    public init(seed: UInt64) { self.seed = seed }

    private mutating func nextGenerator() -> Philox {
        defer { index += 1 }
        return Philox(seed: seed, stream: Philox.stream(0x1417, index))
    }

    /// U(−bound, bound).
    public mutating func uniform(shape: [Int], bound: Float) -> Tensor {
        let generator = nextGenerator()
        var t = Tensor(shape: shape)
        t.withUnsafeMutableBufferPointer { buffer in
            generator.fillUniform(buffer)
            for i in buffer.indices { buffer[i] = (2 * buffer[i] - 1) * bound }
        }
        return t
    }

    /// N(0, standardDeviation²).
    public mutating func normal(shape: [Int], standardDeviation: Float = 1) -> Tensor {
        nextGenerator().normalTensor(shape: shape, standardDeviation: standardDeviation)
    }

    /// A constant tensor (consumes no stream, so adding a constant does not shift later draws).
    public func constant(shape: [Int], _ value: Float) -> Tensor {
        Tensor(shape: shape, repeating: value)
    }

    /// A fresh seed for a layer's own random stream (dropout), derived from the model seed.
    public mutating func derivedSeed() -> UInt64 {
        let block = nextGenerator().block(0)
        return UInt64(block[0]) | UInt64(block[1]) << 32
    }
}
