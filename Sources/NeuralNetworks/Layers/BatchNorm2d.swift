import LinearAlgebra

/// Batch normalization over the channels of a channel-major `[C, B, H, W]` input
/// (PyTorch's `nn.BatchNorm2d`: eps 1e-5, momentum 0.1, affine, running statistics).
///
/// Training: per channel, over its n = B·H·W values, μ = mean, σ² = biased variance
/// (two passes: the mean first, then Σ(x − μ)², which avoids the cancellation of
/// E[x²] − μ²), x̂ = (x − μ)/√(σ² + ε), y = γ·x̂ + β. Running statistics update as in
/// PyTorch: r_μ ← (1 − m)·r_μ + m·μ and r_σ² ← (1 − m)·r_σ² + m·σ²·n/(n − 1)
/// (the *unbiased* variance). Evaluation normalizes with the running statistics.
///
/// Backward (training), with g = ∂y and sums over the channel's n values:
/// ∂γ = Σ g·x̂, ∂β = Σ g, ∂x = γ/√(σ²+ε) · (g − ∂β/n − x̂·∂γ/n).
/// In evaluation mode μ and σ are constants, so ∂x = γ/√(r_σ² + ε) · g.
public final class BatchNorm2d: Layer {
    public let name: String
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Buffer
    public let runningVariance: Buffer
    public var threads: Int

    private var cachedInput: Tensor?
    private var cachedMean: [Float] = []
    private var cachedInverseStd: [Float] = []
    private var cachedTraining = true
    private var cachedOutput: Tensor?
    /// Applies ReLU to the output in the same pass (`relu(bn(x))`, as every batch norm of the
    /// ResNets is followed by one but the second of each block); backward masks ∂y by y > 0 first.
    public let appliesReLU: Bool

    public init(name: String, channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, appliesReLU: Bool = false,
                threads: Int = 1) {
        self.name = name
        self.appliesReLU = appliesReLU
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        self.threads = threads
        weight = Parameter(name: qualified(name, "weight"), value: Tensor(shape: [channels], repeating: 1),
                           isNormalizationOrBias: true)
        bias = Parameter(name: qualified(name, "bias"), value: Tensor(shape: [channels]), isNormalizationOrBias: true)
        runningMean = Buffer(name: qualified(name, "running_mean"), value: Tensor(shape: [channels]))
        runningVariance = Buffer(name: qualified(name, "running_var"), value: Tensor(shape: [channels], repeating: 1))
    }

    public var parameters: [Parameter] { [weight, bias] }
    public var buffers: [Buffer] { [runningMean, runningVariance] }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let s = input.shape
        guard s.count >= 2, s[0] == channels, input.count > 0, !(training && input.count / channels < 2) else {
            throw NeuralNetworkError.inputShape(
                layer: name, expected: "[\(channels), B, ...] (channel-major; ≥ 2 values per channel in training)",
                got: s)
        }
        let n = input.count / channels
        var mean = [Float](repeating: 0, count: channels)
        var inverseStd = [Float](repeating: 0, count: channels)
        var variances = [Float](repeating: 0, count: channels)
        if training {
            input.withPointer { x in
                mean.withUnsafeMutableBufferPointer { meanBuffer in
                    inverseStd.withUnsafeMutableBufferPointer { invBuffer in
                      variances.withUnsafeMutableBufferPointer { varBuffer in
                        let mp = SharedPointer(meanBuffer.baseAddress!), ip = SharedPointer(invBuffer.baseAddress!)
                        let vp = SharedPointer(varBuffer.baseAddress!)
                        let xs = SharedPointer(x)
                        parallelRanges(channels, threads: threads) { range in
                            for c in range {
                                let row = UnsafeBufferPointer(start: xs.base + c &* n, count: n)
                                let mu = Vector.sum(row) / Float(n)
                                let squares = BatchNorm2d.centeredSumOfSquares(row, mu)
                                let variance = squares / Float(n)
                                vp.base[c] = squares / Float(n - 1)
                                mp.base[c] = mu
                                ip.base[c] = 1 / (variance + epsilon).squareRoot()
                            }
                        }
                      }
                    }
                }
            }
            // r_μ ← (1 − m)·r_μ + m·μ ;  r_σ² ← (1 − m)·r_σ² + m·Σ(x − μ)²/(n − 1)
            runningMean.value.withMutablePointer { rm in
                runningVariance.value.withMutablePointer { rv in
                    for c in 0..<channels {
                        rm[c] = (1 - momentum) * rm[c] + momentum * mean[c]
                        rv[c] = (1 - momentum) * rv[c] + momentum * variances[c]
                    }
                }
            }
        } else {
            runningMean.value.withPointer { rm in
                runningVariance.value.withPointer { rv in
                    for c in 0..<channels {
                        mean[c] = rm[c]
                        inverseStd[c] = 1 / (rv[c] + epsilon).squareRoot()
                    }
                }
            }
        }
        var output = Tensor.filled(shape: s) { _, _ in }  // every element is written below
        let relu = appliesReLU
        output.withMutablePointer { y in
            input.withPointer { x in
                weight.value.withPointer { gamma in
                    bias.value.withPointer { beta in
                        let ys = SharedPointer(y), xs = SharedPointer(x)
                        let gs = SharedPointer(gamma), bs = SharedPointer(beta)
                        parallelRanges(channels, threads: threads) { range in
                            for c in range {
                                let scale = gs.base[c] * inverseStd[c]
                                let shift = bs.base[c] - mean[c] * scale
                                let xr = xs.base + c &* n, yr = ys.base + c &* n
                                BatchNorm2d.affine(xr, into: yr, count: n, scale: scale, shift: shift, relu: relu)
                            }
                        }
                    }
                }
            }
        }
        cachedInput = input
        cachedOutput = relu ? output : nil
        cachedMean = mean
        cachedInverseStd = inverseStd
        cachedTraining = training
        return output
    }

    /// yᵢ = xᵢ·scale + shift, or its ReLU: the normalization's output pass (shared with `GroupNorm`).
    @inline(__always)
    static func affine(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int, scale: Float, shift: Float,
                       relu: Bool) {
        if relu {
            for i in 0..<n { y[i] = Swift.max(x[i] * scale + shift, 0) }
        } else {
            for i in 0..<n { y[i] = x[i] * scale + shift }
        }
    }

    /// Σ (xᵢ − μ)² with 16-lane accumulators.
    static func centeredSumOfSquares(_ x: UnsafeBufferPointer<Float>, _ mu: Float) -> Float {
        let p = x.baseAddress!, n = x.count
        var acc = SIMD16<Float>(repeating: 0)
        let m = SIMD16<Float>(repeating: mu)
        var i = 0
        while i &+ 16 <= n {
            let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - m
            acc += d * d
            i &+= 16
        }
        var tail: Float = 0
        while i < n { let d = p[i] - mu; tail += d * d; i &+= 1 }
        return acc.sum() + tail
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let input = cachedInput else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.shape == input.shape else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(input.shape)",
                                                got: outputGradient.shape)
        }
        let n = input.count / channels
        let mean = cachedMean, inverseStd = cachedInverseStd, training = cachedTraining
        // With the fused ReLU, ∂(pre-ReLU) = ∂y·[y > 0] is written into the ∂x buffer first and
        // the normalization backward then runs in place on it.
        let output = cachedOutput, masked = cachedOutput != nil
        var sumGradient = [Float](repeating: 0, count: channels)
        var sumGradientXHat = [Float](repeating: 0, count: channels)
        var inputGradient = Tensor.filled(shape: input.shape) { _, _ in }  // every element is written below
        outputGradient.withPointer { dy in
          (output ?? outputGradient).withPointer { y in
            input.withPointer { x in
                inputGradient.withMutablePointer { dx in
                    weight.value.withPointer { gamma in
                        sumGradient.withUnsafeMutableBufferPointer { sg in
                            sumGradientXHat.withUnsafeMutableBufferPointer { sgx in
                                let dys = SharedPointer(dy), xs = SharedPointer(x), dxs = SharedPointer(dx)
                                let gs = SharedPointer(gamma), ys = SharedPointer(y)
                                let sgs = SharedPointer(sg.baseAddress!), sgxs = SharedPointer(sgx.baseAddress!)
                                parallelRanges(channels, threads: threads) { range in
                                    for c in range {
                                        var g = UnsafePointer(dys.base + c &* n)
                                        let xr = xs.base + c &* n, dxr = dxs.base + c &* n
                                        if masked {
                                            let yr = ys.base + c &* n
                                            for i in 0..<n { dxr[i] = yr[i] > 0 ? g[i] : 0 }
                                            g = UnsafePointer(dxr)
                                        }
                                        let mu = mean[c], inv = inverseStd[c]
                                        let (sum, sumXHat) = BatchNorm2d.gradientSums(g, xr, n: n, mean: mu, inverseStd: inv)
                                        sgs.base[c] = sum
                                        sgxs.base[c] = sumXHat
                                        let scale = gs.base[c] * inv
                                        if training {
                                            let a = sum / Float(n), b = sumXHat / Float(n)
                                            for i in 0..<n {
                                                let xhat = (xr[i] - mu) * inv
                                                dxr[i] = scale * (g[i] - a - xhat * b)
                                            }
                                        } else {
                                            for i in 0..<n { dxr[i] = scale * g[i] }
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
        weight.gradient.withMutablePointer { dg in
            bias.gradient.withMutablePointer { db in
                for c in 0..<channels {
                    dg[c] += sumGradientXHat[c]
                    db[c] += sumGradient[c]
                }
            }
        }
        return inputGradient
    }

    /// (Σ gᵢ, Σ gᵢ·x̂ᵢ) with x̂ᵢ = (xᵢ − μ)·inv, in 16-lane accumulators.
    static func gradientSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, n: Int,
                             mean: Float, inverseStd: Float) -> (Float, Float) {
        var s0 = SIMD16<Float>(repeating: 0), s1 = SIMD16<Float>(repeating: 0)
        let m = SIMD16<Float>(repeating: mean)
        var i = 0
        while i &+ 16 <= n {
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            s0 += gv
            s1 += gv * (xv - m)
            i &+= 16
        }
        var t0: Float = 0, t1: Float = 0
        while i < n { t0 += g[i]; t1 += g[i] * (x[i] - mean); i &+= 1 }
        return (s0.sum() + t0, (s1.sum() + t1) * inverseStd)
    }
}
