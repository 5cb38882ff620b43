/// Plain scalar loops with the order of operations of the AVX2 and AVX-512 kernels (CVectorKernels'
/// `vector_kernels.h`; the AVX-512 ones keep the AVX2 lanes): the oracle the tests compare both
/// fast paths with, bit for bit.
extension TallSkinny {
    /// P = M·Q as `tall_skinny_multiply_avx2` computes it: per column block of `block` columns,
    /// 16 lane sums (lane j mod 16, FMA in ascending j) over the block's first ⌊w/16⌋·16 columns,
    /// reduced as ((l + l₊₈) + l₊₄) + l₊₂, then + l₊₁, plus an FMA sum of the rest, added to P.
    static func referenceMultiply(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                                  by q: UnsafePointer<Float>, rank r: Int, block: Int) -> [Float] {
        var p = [Float](repeating: 0, count: n * r)
        for i in 0..<n {
            for k in 0..<r {
                var b0 = 0
                while b0 < cols {
                    let w = min(block, cols - b0), vectorEnd = w / 16 * 16
                    var lanes = [Float](repeating: 0, count: 16)
                    for j in 0..<vectorEnd { lanes[j % 16] = lanes[j % 16].addingProduct(m[i * cols + b0 + j], q[(b0 + j) * r + k]) }
                    var tail: Float = 0
                    for j in vectorEnd..<w { tail = tail.addingProduct(m[i * cols + b0 + j], q[(b0 + j) * r + k]) }
                    for half in [8, 4, 2, 1] { for l in 0..<half { lanes[l] += lanes[l + half] } }
                    p[i * r + k] += lanes[0] + tail
                    b0 += w
                }
            }
        }
        return p
    }

    /// Q' = Mᵀ·P as `tall_skinny_multiply_transposed_avx2` computes it: Q'[j, k] = fma(P[i, k],
    /// M[i, j], Q'[j, k]) over the rows i in ascending order, from 0.
    static func referenceMultiplyTransposed(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                                            by p: UnsafePointer<Float>, rank r: Int) -> [Float] {
        var q = [Float](repeating: 0, count: cols * r)
        for i in 0..<n {
            for j in 0..<cols { for k in 0..<r { q[j * r + k] = q[j * r + k].addingProduct(p[i * r + k], m[i * cols + j]) } }
        }
        return q
    }
}
