import LinearAlgebra
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax cross-entropy over rows of logits, mean over the batch (PyTorch's
/// `F.cross_entropy` with the default `reduction="mean"`).
///
/// Numerically stable form: with m = maxⱼ zⱼ, loss = m + log Σⱼ exp(zⱼ − m) − z_label,
/// so every exponent is ≤ 0 and the sum is ≥ 1 (no overflow, no log 0). The gradient is
/// (softmax(z) − onehot(label))/N. Row losses are summed in Double.
public enum SoftmaxCrossEntropy {
    /// The mean loss and ∂loss/∂logits for `logits [N, K]` and `labels` (N values in 0..<K).
    public static func lossAndGradient(logits: Tensor, labels: [Int]) throws -> (loss: Float, gradient: Tensor) {
        let (n, k) = try check(logits, labels)
        var gradient = Tensor(shape: logits.shape)
        var total = 0.0
        let inverseN = 1 / Float(n)
        logits.withPointer { z in
            gradient.withMutablePointer { g in
                for row in 0..<n {
                    let zr = z + row * k, gr = g + row * k
                    let m = maximum(zr, k)
                    // gr ← exp(z − m), then normalize to softmax/N.
                    let sum = exponentials(zr, k, shift: m, into: gr)
                    total += Double(m) + Double(log(sum)) - Double(zr[labels[row]])
                    let scale = inverseN / sum
                    for j in 0..<k { gr[j] *= scale }
                    gr[labels[row]] -= inverseN
                }
            }
        }
        return (Float(total / Double(n)), gradient)
    }

    /// The mean loss only (evaluation).
    public static func loss(logits: Tensor, labels: [Int]) throws -> Float {
        let (n, k) = try check(logits, labels)
        var total = 0.0
        var scratch = [Float](repeating: 0, count: k)
        logits.withPointer { z in
            scratch.withUnsafeMutableBufferPointer { s in
                for row in 0..<n {
                    let zr = z + row * k
                    let m = maximum(zr, k)
                    let sum = exponentials(zr, k, shift: m, into: s.baseAddress!)
                    total += Double(m) + Double(log(sum)) - Double(zr[labels[row]])
                }
            }
        }
        return Float(total / Double(n))
    }

    private static func check(_ logits: Tensor, _ labels: [Int]) throws -> (Int, Int) {
        guard logits.shape.count == 2, logits.shape[0] == labels.count, logits.shape[0] > 0, logits.shape[1] > 0 else {
            throw NeuralNetworkError.inputShape(layer: "cross_entropy", expected: "[\(labels.count), K] logits for \(labels.count) labels",
                                                got: logits.shape)
        }
        let k = logits.shape[1]
        if let bad = labels.first(where: { $0 < 0 || $0 >= k }) {
            throw NeuralNetworkError.indexOutOfRange(layer: "cross_entropy", index: bad, limit: k)
        }
        return (logits.shape[0], k)
    }

    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i &+ 16 <= n {
            acc = pointwiseMax(acc, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
            i &+= 16
        }
        var m = acc.max()
        while i < n { m = Swift.max(m, x[i]); i &+= 1 }
        return m
    }

    /// y ← exp(x − shift), returning Σ y (16-lane accumulators).
    @inline(__always)
    static func exponentials(_ x: UnsafePointer<Float>, _ n: Int, shift: Float, into y: UnsafeMutablePointer<Float>) -> Float {
        let s = SIMD16<Float>(repeating: shift)
        var acc = SIMD16<Float>(repeating: 0)
        var i = 0
        while i &+ 16 <= n {
            let e = FastMath.exp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - s)
            UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: SIMD16<Float>.self)
            acc += e
            i &+= 16
        }
        var tail: Float = 0
        if i < n {
            var v = SIMD16<Float>(repeating: -100)
            for j in 0..<(n &- i) { v[j] = x[i &+ j] - shift }
            let e = FastMath.exp(v)
            for j in 0..<(n &- i) { y[i &+ j] = e[j]; tail += e[j] }
        }
        return acc.sum() + tail
    }
}

/// Vectorized elementary functions for the hot loops (softmax, LSTM gates).
public enum FastMath {
    /// eˣ for 16 lanes, Cephes `expf` (S. Moshier): x = n·ln2 + r with n = round(x/ln2),
    /// |r| ≤ ln2/2, ln2 split in two constants (C₁ exact in 9 bits) so n·C₁ is exact;
    /// eʳ by its degree-6 minimax polynomial (relative error < 2 ulp on the range);
    /// 2ⁿ built in the exponent bits. Inputs are clamped to [−87.3, 88.3], so the result
    /// is finite and normal (exp of very negative x gives ≈ 1e-38 instead of 0, which is
    /// below a Float sum's resolution whenever one term is ≥ 1, as in softmax).
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let clamped = pointwiseMin(pointwiseMax(x, SIMD16(repeating: -87.3)), SIMD16(repeating: 88.3))
        // Round to nearest by adding 1.5·2²³: the sum's low mantissa bits hold n.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let er = p * (r * r) + r + 1
        let bits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((bits &+ 127) &<< 23, to: SIMD16<Float>.self)
        return er * scale
    }

    /// σ(x) = 1/(1 + e⁻ˣ).
    @inline(__always)
    public static func sigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> {
        1 / (1 + exp(-x))
    }

    /// tanh(x) = 2σ(2x) − 1. Near 0 this loses relative precision (absolute error ~1e-7),
    /// which is what the LSTM's gates and cell need (absolute, not relative, accuracy).
    @inline(__always)
    public static func tanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
        2 / (1 + exp(-2 * x)) - 1
    }
}
