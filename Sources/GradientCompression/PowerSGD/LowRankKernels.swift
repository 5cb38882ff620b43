import CVectorKernels
import LinearAlgebra

/// The two fused passes of a PowerSGD step over a gradient matrix (ALGORITHMS.md §1.3–§1.5).
///
/// At rank ≤ 4 a step does ~2r flops per element read, so it is bound by memory traffic,
/// and the cost is the number of times the `n×m` data crosses the memory bus. A step needs
/// three dependent passes over the error-corrected matrix M = G + E (P = M·Q; after the P
/// all-reduce, Q = Mᵀ·P̂; after the Q all-reduce, the output). These kernels fuse the
/// element-wise work into the first and the last:
/// - `project`: E ← G + E − P̂'·Q_c'ᵀ (last step's deferred residual; M is stored in place of
///   E) and P = M·Q, row by row: one read of G and E and one write of E; the dot products
///   re-read the row from cache.
/// - `expand`: G ← P̂·Q̄ᵀ, a write-only pass.
/// With `TallSkinny.multiplyTransposed` (one read of M) in between, a step moves 5 floats
/// per element (see docs/powersgd.md). `reconstruct` (output and error in one pass) serves
/// the steps that write the error at once (PowerSGD+ refresh, LQ-SGD).
///
/// At rank ≤ 8 on CPUs with AVX2 and FMA, `project` and `expand` run in C (`low_rank_project_*`,
/// `low_rank_expand_*` in CVectorKernels: 16 lanes, the dot products summed while the row is
/// formed, with the order of the vector tall-skinny M·Q); `referenceProject` and
/// `referenceExpand` repeat their order in scalar loops and the tests hold both instruction sets
/// to them bit for bit. The Swift loops below are the portable path (Swift's x86-64 baseline has
/// 4-lane SSE only), which agrees with the references to rounding.
enum LowRankKernels {
    /// The largest rank the C kernels take (their accumulators are registers).
    static let vectorMaximumRank = 8

    /// Last step's pending residual P̂'·Q_c'ᵀ (`pHat` n×r row-major, `qt` = Q_c'ᵀ, r×m).
    struct Correction {
        var pHat: UnsafePointer<Float>
        var qt: UnsafePointer<Float>
        init(pHat: UnsafeMutablePointer<Float>, qt: UnsafeMutablePointer<Float>) {
            self.pHat = UnsafePointer(pHat); self.qt = UnsafePointer(qt)
        }
    }

    /// For each row i: if `error` is given, `error[i,:] += gradient[i,:] − P̂'[i,:]·Q_c'ᵀ`
    /// (the correction, when given) and M = error, else M = gradient; then
    /// `p[i, k] = M[i,:]·qt[k,:]` for k < r. `qt` is Qᵀ (`r×m`). Returns ‖M‖² (in Double,
    /// per row), for the relative-error report.
    @discardableResult
    static func project(gradient: UnsafePointer<Float>, error: UnsafeMutablePointer<Float>?, correction: Correction? = nil,
                        rows n: Int, columns m: Int, qt: UnsafePointer<Float>, rank r: Int,
                        into p: UnsafeMutablePointer<Float>, kernel: KernelPath = .preferred) -> Double {
        if kernel.hasAVX2, r <= vectorMaximumRank {
            let vector = kernel == .avx512 ? low_rank_project_avx512 : low_rank_project_avx2
            return vector(gradient, error, correction?.pHat, correction?.qt, n, m, qt, r, p)
        }
        var total = 0.0
        for i in 0..<n {
            let g = gradient + i &* m
            let row: UnsafePointer<Float>
            var squares = SIMD16<Float>(), tail: Float = 0
            if let error {
                let e = error + i &* m
                if let correction {
                    let c = correction.pHat + i &* r, cqt = correction.qt
                    var j = 0
                    while j &+ 16 <= m {
                        var v = load(g + j) + load(e + j)
                        for k in 0..<r { v -= c[k] * load(cqt + (k &* m &+ j)) }
                        store(v, e + j)
                        squares += v * v
                        j &+= 16
                    }
                    while j < m {
                        var v = g[j] + e[j]
                        for k in 0..<r { v -= c[k] * cqt[k &* m &+ j] }
                        e[j] = v
                        tail += v * v
                        j &+= 1
                    }
                } else {
                    var j = 0
                    while j &+ 16 <= m {
                        let v = load(g + j) + load(e + j)
                        store(v, e + j)
                        squares += v * v
                        j &+= 16
                    }
                    while j < m { e[j] += g[j]; tail += e[j] * e[j]; j &+= 1 }
                }
                row = UnsafePointer(e)
            } else {
                row = g
                var j = 0
                while j &+ 16 <= m { let v = load(g + j); squares += v * v; j &+= 16 }
                while j < m { tail += g[j] * g[j]; j &+= 1 }
            }
            total += Double(squares.sum() + tail)
            var k = 0
            while k < r {
                let d = TallSkinny.dot4(row, qt + k &* m, stride: m, count: m, rows: min(4, r &- k))
                for t in 0..<min(4, r &- k) { p[i &* r &+ k &+ t] = d[t] }
                k &+= 4
            }
        }
        return total
    }

    /// `output = P̂·Q̄ᵀ` row by row (`qt` = Q̄ᵀ, r×m): a pure write pass over the output. With
    /// `streaming`, the C kernels' stores bypass the caches (the same values): a step whose
    /// outputs together exceed the last-level cache would find them evicted when the optimizer
    /// reads them, and bypassing saves reading each line into the cache before it is written.
    static func expand(pHat: UnsafePointer<Float>, rank r: Int, qt: UnsafePointer<Float>,
                       rows n: Int, columns m: Int, into output: UnsafeMutablePointer<Float>,
                       streaming: Bool = false, kernel: KernelPath = .preferred) {
        if kernel.hasAVX2, r <= vectorMaximumRank {
            let vector = kernel == .avx512 ? low_rank_expand_avx512 : low_rank_expand_avx2
            vector(pHat, r, qt, n, m, output, streaming ? 1 : 0)
            return
        }
        for i in 0..<n {
            let c = pHat + i &* r, out = output + i &* m
            var j = 0
            while j &+ 16 <= m {
                var o = SIMD16<Float>()
                for k in 0..<r { o += c[k] * load(qt + (k &* m &+ j)) }
                store(o, out + j)
                j &+= 16
            }
            while j < m {
                var o: Float = 0
                for k in 0..<r { o += c[k] * qt[k &* m &+ j] }
                out[j] = o
                j &+= 1
            }
        }
    }

    /// Squared norms accumulated by `reconstruct`: of the input M and of the residual.
    struct Norms { var input: Double = 0; var residual: Double = 0 }

    /// For each row i, with c = P̂[i,:]: `output[i,:] = c·Q̄ᵀ`; residual = M[i,:] − c·Q_wᵀ when
    /// `localQt` is given (variant B, the worker's own projection) or M[i,:] − output[i,:]
    /// (variant A, and the error report without feedback); written to `error` when given.
    /// `localPHat` replaces c in the residual by the row of another left factor: the alternating
    /// step's P-half, where the output is P̄·Q̂ᵀ and the worker's own projection P_w·Q̂ᵀ.
    /// `input` may alias `output` (no error feedback: M is the gradient itself) or `error`.
    static func reconstruct(input: UnsafePointer<Float>, rows n: Int, columns m: Int,
                            pHat: UnsafePointer<Float>, rank r: Int,
                            meanQt: UnsafePointer<Float>, localQt: UnsafePointer<Float>?,
                            localPHat: UnsafePointer<Float>? = nil,
                            output: UnsafeMutablePointer<Float>, error: UnsafeMutablePointer<Float>?) -> Norms {
        var norms = Norms()
        let ownProjection = localQt != nil || localPHat != nil
        let residualQt = localQt ?? meanQt
        for i in 0..<n {
            let c = pHat + i &* r, d = (localPHat ?? pHat) + i &* r
            let x = input + i &* m, out = output + i &* m
            let e = error.map { $0 + i &* m }
            var inputSquares = SIMD16<Float>(), residualSquares = SIMD16<Float>()
            var j = 0
            while j &+ 16 <= m {
                let v = load(x + j)
                var o = SIMD16<Float>()
                for k in 0..<r { o += c[k] * load(meanQt + (k &* m &+ j)) }
                var residual: SIMD16<Float>
                if ownProjection {
                    var l = SIMD16<Float>()
                    for k in 0..<r { l += d[k] * load(residualQt + (k &* m &+ j)) }
                    residual = v - l
                } else {
                    residual = v - o
                }
                store(o, out + j)
                if let e { store(residual, e + j) }
                inputSquares += v * v
                residualSquares += residual * residual
                j &+= 16
            }
            var inputTail: Float = 0, residualTail: Float = 0
            while j < m {
                let v = x[j]
                var o: Float = 0, l: Float = 0
                for k in 0..<r { o += c[k] * meanQt[k &* m &+ j] }
                if ownProjection { for k in 0..<r { l += d[k] * residualQt[k &* m &+ j] } } else { l = o }
                out[j] = o
                let residual = v - l
                e?[j] = residual
                inputTail += v * v
                residualTail += residual * residual
                j &+= 1
            }
            norms.input += Double(inputSquares.sum() + inputTail)
            norms.residual += Double(residualSquares.sum() + residualTail)
        }
        return norms
    }

    /// `rows×columns` row-major → `columns×rows` row-major.
    static func transpose(_ a: UnsafePointer<Float>, rows: Int, columns: Int, into b: UnsafeMutablePointer<Float>) {
        for i in 0..<rows { for j in 0..<columns { b[j &* rows &+ i] = a[i &* columns &+ j] } }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }
    @inline(__always) static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}
