/// Plain scalar loops with the order of operations of the C kernels `low_rank_project_*` and
/// `low_rank_expand_*` (CVectorKernels' `vector_kernels.h`): the oracle the tests compare the
/// AVX2 and AVX-512 paths with, bit for bit.
extension LowRankKernels {
    /// `project` as the C kernels compute it; returns (E after the pass or nil, P, ‖M‖²).
    static func referenceProject(gradient g: [Float], error: [Float]?, correction: (pHat: [Float], qt: [Float])?,
                                 rows n: Int, columns m: Int, qt: [Float], rank r: Int) -> (error: [Float]?, p: [Float], squares: Double) {
        var e = error
        var p = [Float](repeating: 0, count: n * r)
        var total = 0.0
        let vectorEnd = m / 16 * 16
        for i in 0..<n {
            var lanes = [[Float]](repeating: [Float](repeating: 0, count: 16), count: r)
            var tails = [Float](repeating: 0, count: r)
            var squareLanes = [Float](repeating: 0, count: 16), squareTail: Float = 0
            for j in 0..<m {
                var v = g[i * m + j]
                if e != nil {
                    v = v + e![i * m + j]
                    if let correction {
                        for k in 0..<r { v = v.addingProduct(-correction.pHat[i * r + k], correction.qt[k * m + j]) }
                    }
                    e![i * m + j] = v
                }
                if j < vectorEnd {
                    squareLanes[j % 16] = squareLanes[j % 16].addingProduct(v, v)
                    for k in 0..<r { lanes[k][j % 16] = lanes[k][j % 16].addingProduct(v, qt[k * m + j]) }
                } else {
                    squareTail = squareTail.addingProduct(v, v)
                    for k in 0..<r { tails[k] = tails[k].addingProduct(v, qt[k * m + j]) }
                }
            }
            for k in 0..<r { p[i * r + k] = 0 + (reduced(lanes[k]) + tails[k]) }
            total += Double(reduced(squareLanes) + squareTail)
        }
        return (e, p, total)
    }

    /// `expand` as the C kernels compute it: each output element is an FMA chain over k from 0.
    static func referenceExpand(pHat: [Float], rank r: Int, qt: [Float], rows n: Int, columns m: Int) -> [Float] {
        var output = [Float](repeating: 0, count: n * m)
        for i in 0..<n {
            for j in 0..<m {
                var s: Float = 0
                for k in 0..<r { s = s.addingProduct(pHat[i * r + k], qt[k * m + j]) }
                output[i * m + j] = s
            }
        }
        return output
    }

    /// 16 lanes reduced as ((l + l₊₈) + l₊₄) + l₊₂, then + l₊₁.
    private static func reduced(_ lanes: [Float]) -> Float {
        var l = lanes
        for half in [8, 4, 2, 1] { for t in 0..<half { l[t] += l[t + half] } }
        return l[0]
    }
}
