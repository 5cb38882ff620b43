import LinearAlgebra

/// Group normalization (Wu & He 2018; PyTorch's `nn.GroupNorm`, eps 1e-5, affine) on a
/// channel-major `[C, B, H, W]` input: the C channels form G groups of C/G consecutive channels,
/// and each example's group is normalized by its own statistics, over its n = (C/G)·H·W values:
/// x̂ = (x − μ_bg)/√(σ²_bg + ε) with the biased variance, y = γ_c·x̂ + β_c.
///
/// Unlike batch norm, no statistic crosses examples, so example j's output and gradients depend
/// on example j alone: what DP-SGD's per-example clipping needs (it is Opacus's replacement for
/// batch norm). Training and evaluation compute the same function; there are no running statistics.
///
/// Backward, per example b and group g, with h = γ_c·∂y and sums over the group's n values:
/// ∂x = 1/√(σ²+ε) · (h − Σh/n − x̂·Σ(h·x̂)/n), and per channel ∂γ_c = Σ ∂y·x̂, ∂β_c = Σ ∂y over
/// every example's plane. The per-plane sums are kept by example (`perExampleWeightGradient`,
/// `perExampleBiasGradient`, `[B, C]`), which gives per-example gradients for free.
public final class GroupNorm: Layer {
    public let name: String
    public let groups: Int
    public let channels: Int
    public let epsilon: Float
    public let weight: Parameter
    public let bias: Parameter
    /// Applies ReLU to the output in the same pass, as `BatchNorm2d.appliesReLU` (the ResNets'
    /// `relu(norm(x))`); backward masks ∂y by y > 0 first.
    public let appliesReLU: Bool
    public var threads: Int

    private(set) var cachedInput: Tensor?
    private var cachedOutput: Tensor?
    /// Indexed b·G + g.
    private var cachedMean: [Float] = []
    private var cachedInverseStd: [Float] = []
    /// Per-example mode (DP-SGD): backward adds nothing to the parameter gradients and keeps
    /// example b's ∂γ and ∂β as rows of these `[B, C]` arrays.
    var recordsPerExampleGradients = false
    private(set) var perExampleWeightGradient: [Float] = []
    private(set) var perExampleBiasGradient: [Float] = []

    /// The groups Opacus uses when it replaces a batch norm of `channels` channels, min(32, C)
    /// (`opacus.validators.batch_norm`), so the two implementations train the same model; where
    /// 32 does not divide C (Opacus then fails), the largest divisor of C below 32.
    public static func defaultGroups(channels: Int) -> Int {
        (1...max(1, min(32, channels))).last { channels % $0 == 0 } ?? 1
    }

    /// A layer of `groups` groups, which must divide `channels`.
    public convenience init(name: String, groups: Int, channels: Int, epsilon: Float = 1e-5, appliesReLU: Bool = false,
                            threads: Int = 1) throws {
        guard groups >= 1, channels >= 1, channels % groups == 0 else {
            throw NeuralNetworkError.invalidConfiguration(
                "\(name): \(channels) channels cannot be split into \(groups) groups of equal size")
        }
        self.init(name: name, checkedGroups: groups, channels: channels, epsilon: epsilon, appliesReLU: appliesReLU, threads: threads)
    }

    /// A layer of `defaultGroups(channels:)` groups.
    public convenience init(name: String, channels: Int, appliesReLU: Bool = false, threads: Int = 1) {
        self.init(name: name, checkedGroups: Self.defaultGroups(channels: channels), channels: channels, epsilon: 1e-5,
                  appliesReLU: appliesReLU, threads: threads)
    }

    private init(name: String, checkedGroups groups: Int, channels: Int, epsilon: Float, appliesReLU: Bool, threads: Int) {
        self.name = name
        self.groups = groups
        self.channels = channels
        self.epsilon = epsilon
        self.appliesReLU = appliesReLU
        self.threads = threads
        weight = Parameter(name: qualified(name, "weight"), value: Tensor(shape: [channels], repeating: 1),
                           isNormalizationOrBias: true)
        bias = Parameter(name: qualified(name, "bias"), value: Tensor(shape: [channels]), isNormalizationOrBias: true)
    }

    public var parameters: [Parameter] { [weight, bias] }

    var channelsPerGroup: Int { channels / groups }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let s = input.shape
        guard s.count >= 2, s[0] == channels, input.count > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[\(channels), B, ...] (channel-major)", got: s)
        }
        let batch = s[1], plane = input.count / (channels * batch), perGroup = channelsPerGroup
        let n = perGroup * plane
        var mean = [Float](repeating: 0, count: batch * groups)
        var inverseStd = [Float](repeating: 0, count: batch * groups)
        var output = Tensor.filled(shape: s) { _, _ in }  // every element is written below
        let relu = appliesReLU, eps = epsilon, g = groups
        output.withMutablePointer { y in
            input.withPointer { x in
                weight.value.withPointer { gamma in
                    bias.value.withPointer { beta in
                        mean.withUnsafeMutableBufferPointer { mb in
                            inverseStd.withUnsafeMutableBufferPointer { ib in
                                let ys = SharedPointer(y), xs = SharedPointer(x), gs = SharedPointer(gamma)
                                let bs = SharedPointer(beta), ms = SharedPointer(mb.baseAddress!), vs = SharedPointer(ib.baseAddress!)
                                parallelRanges(batch, threads: threads) { examples in
                                    for b in examples {
                                        for group in 0..<g {
                                            let first = group &* perGroup
                                            var sum: Float = 0
                                            for c in first..<(first &+ perGroup) {
                                                sum += Vector.sum(UnsafeBufferPointer(start: xs.base + (c &* batch &+ b) &* plane, count: plane))
                                            }
                                            let mu = sum / Float(n)
                                            var squares: Float = 0
                                            for c in first..<(first &+ perGroup) {
                                                squares += BatchNorm2d.centeredSumOfSquares(
                                                    UnsafeBufferPointer(start: xs.base + (c &* batch &+ b) &* plane, count: plane), mu)
                                            }
                                            let inv = 1 / (squares / Float(n) + eps).squareRoot()
                                            ms.base[b &* g &+ group] = mu
                                            vs.base[b &* g &+ group] = inv
                                            for c in first..<(first &+ perGroup) {
                                                let scale = gs.base[c] * inv, shift = bs.base[c] - mu * scale
                                                let xr = xs.base + (c &* batch &+ b) &* plane, yr = ys.base + (c &* batch &+ b) &* plane
                                                BatchNorm2d.affine(xr, into: yr, count: plane, scale: scale, shift: shift, relu: relu)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training {
            cachedInput = input
            cachedOutput = relu ? output : nil
            cachedMean = mean
            cachedInverseStd = inverseStd
        } else {
            cachedInput = nil
            cachedOutput = nil
        }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let input = cachedInput else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.shape == input.shape else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(input.shape)", got: outputGradient.shape)
        }
        let batch = input.shape[1], plane = input.count / (channels * batch), perGroup = channelsPerGroup
        let n = Float(perGroup * plane), g = groups, channels = channels
        let mean = cachedMean, inverseStd = cachedInverseStd
        let output = cachedOutput, masked = cachedOutput != nil
        // Σ ∂y and Σ ∂y·x̂ over each example's channel plane, [B, C]: the per-example ∂β and ∂γ.
        var biasSums = [Float](repeating: 0, count: batch * channels)
        var weightSums = [Float](repeating: 0, count: batch * channels)
        var inputGradient = Tensor.filled(shape: input.shape) { _, _ in }  // every element is written below
        outputGradient.withPointer { dy in
          (output ?? outputGradient).withPointer { y in
            input.withPointer { x in
                inputGradient.withMutablePointer { dx in
                    weight.value.withPointer { gamma in
                        biasSums.withUnsafeMutableBufferPointer { bsb in
                            weightSums.withUnsafeMutableBufferPointer { wsb in
                                let dys = SharedPointer(dy), ys = SharedPointer(y), xs = SharedPointer(x), dxs = SharedPointer(dx)
                                let gs = SharedPointer(gamma), bss = SharedPointer(bsb.baseAddress!), wss = SharedPointer(wsb.baseAddress!)
                                parallelRanges(batch, threads: threads) { examples in
                                    for b in examples {
                                        for group in 0..<g {
                                            let first = group &* perGroup
                                            let mu = mean[b &* g &+ group], inv = inverseStd[b &* g &+ group]
                                            // Σh and Σh·x̂ over the group, h = γ_c·∂y.
                                            var sumH: Float = 0, sumHXHat: Float = 0
                                            for c in first..<(first &+ perGroup) {
                                                let offset = (c &* batch &+ b) &* plane
                                                var gr = UnsafePointer(dys.base + offset)
                                                if masked {
                                                    let yr = ys.base + offset, dxr = dxs.base + offset
                                                    for i in 0..<plane { dxr[i] = yr[i] > 0 ? gr[i] : 0 }
                                                    gr = UnsafePointer(dxr)
                                                }
                                                let (sum, sumXHat) = BatchNorm2d.gradientSums(gr, xs.base + offset, n: plane,
                                                                                              mean: mu, inverseStd: inv)
                                                bss.base[b &* channels &+ c] = sum
                                                wss.base[b &* channels &+ c] = sumXHat
                                                sumH += gs.base[c] * sum
                                                sumHXHat += gs.base[c] * sumXHat
                                            }
                                            let a = sumH / n, d = sumHXHat / n
                                            for c in first..<(first &+ perGroup) {
                                                let offset = (c &* batch &+ b) &* plane
                                                let gr = masked ? UnsafePointer(dxs.base + offset) : UnsafePointer(dys.base + offset)
                                                let xr = xs.base + offset, dxr = dxs.base + offset, gamma = gs.base[c]
                                                for i in 0..<plane {
                                                    let xhat = (xr[i] - mu) * inv
                                                    dxr[i] = inv * (gamma * gr[i] - a - xhat * d)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
          }
        }
        if recordsPerExampleGradients {
            perExampleWeightGradient = weightSums
            perExampleBiasGradient = biasSums
        } else {
            weight.gradient.withMutablePointer { dg in
                bias.gradient.withMutablePointer { db in
                    for b in 0..<batch {
                        for c in 0..<channels {
                            dg[c] += weightSums[b * channels + c]
                            db[c] += biasSums[b * channels + c]
                        }
                    }
                }
            }
        }
        return inputGradient
    }

    /// Drops what per-example mode kept.
    func clearPerExampleGradients() {
        perExampleWeightGradient = []
        perExampleBiasGradient = []
    }
}
