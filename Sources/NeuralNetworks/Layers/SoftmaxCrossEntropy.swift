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
    /// With `threads > 1` the rows are split over threads; per-row losses are summed in row
    /// order afterwards, so the result does not depend on the thread count.
    public static func lossAndGradient(logits: Tensor, labels: [Int], threads: Int = 1) throws -> (loss: Float, gradient: Tensor) {
        let (n, k) = try check(logits, labels)
        var gradient = Tensor.filled(shape: logits.shape) { _, _ in }  // every row is written below
        var rowLosses = [Double](repeating: 0, count: n)
        let inverseN = 1 / Float(n)
        logits.withPointer { z in
            gradient.withMutablePointer { g in
                rowLosses.withUnsafeMutableBufferPointer { losses in
                    let zs = SharedPointer(z), gs = SharedPointer(g)
                    let ls = UncheckedSendable(losses.baseAddress!)
                    parallelRanges(n, threads: threads) { rows in
                        for row in rows {
                            let zr = UnsafePointer(zs.base + row &* k), gr = gs.base + row &* k
                            let m = maximum(zr, k)
                            // gr ← exp(z − m), then normalize to softmax/N.
                            let sum = exponentials(zr, k, shift: m, into: gr)
                            ls.value[row] = Double(m) + Double(log(sum)) - Double(zr[labels[row]])
                            let scale = inverseN / sum
                            for j in 0..<k { gr[j] *= scale }
                            gr[labels[row]] -= inverseN
                        }
                    }
                }
            }
        }
        return (Float(rowLosses.reduce(0, +) / Double(n)), gradient)
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

    /// maxⱼ xⱼ with four independent accumulators (a select per element; NaN-free input assumed,
    /// a NaN logit makes the loss NaN through the sum anyway).
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0
        var i = 0
        while i &+ 4 <= n {
            m0 = x[i] > m0 ? x[i] : m0
            m1 = x[i &+ 1] > m1 ? x[i &+ 1] : m1
            m2 = x[i &+ 2] > m2 ? x[i &+ 2] : m2
            m3 = x[i &+ 3] > m3 ? x[i &+ 3] : m3
            i &+= 4
        }
        while i < n { m0 = x[i] > m0 ? x[i] : m0; i &+= 1 }
        return Swift.max(Swift.max(m0, m1), Swift.max(m2, m3))
    }

    /// y ← exp(x − shift), returning Σ y. The exponential loop is a plain loop over
    /// `FastMath.exp` so the compiler vectorizes it; the sum is a second pass over y (still in cache).
    @inline(__always)
    static func exponentials(_ x: UnsafePointer<Float>, _ n: Int, shift: Float, into y: UnsafeMutablePointer<Float>) -> Float {
        for i in 0..<n { y[i] = FastMath.exp(x[i] - shift) }
        return Vector.sum(UnsafeBufferPointer(start: y, count: n))
    }
}
