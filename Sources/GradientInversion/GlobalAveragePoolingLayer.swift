/// The mean of each channel's H·W map, `[B, C, H, W]` → `[B, C]` (the ResNets' pooling before the
/// linear head). Linear, so every pass, tangents included, is an average forward and a spread of
/// g/(H·W) over the map backward.
public final class GlobalAveragePoolingLayer: SecondOrderLayer {
    public let channels: Int, height: Int, width: Int
    public var inputSize: Int { channels * height * width }
    public var outputSize: Int { channels }
    private var batch = 0

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels; self.height = height; self.width = width
    }

    private var plane: Int { height * width }

    private func average(_ x: [Float]) -> [Float] {
        (0..<(batch * channels)).map { map in x[(map * plane)..<((map + 1) * plane)].reduce(0, +) / Float(plane) }
    }

    private func spread(_ g: [Float]) -> [Float] {
        (0..<(batch * inputSize)).map { g[$0 / plane] / Float(plane) }
    }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        self.batch = batch
        return average(input)
    }

    public func backward(_ outputGradient: [Float]) -> [Float] { spread(outputGradient) }
    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        inputTangent.map(average) ?? [Float](repeating: 0, count: batch * channels)
    }
    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] { spread(outputGradientTangent) }
}
