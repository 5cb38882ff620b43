import CVectorKernels
import Dispatch

/// Products of a large `n×m` matrix M with a thin factor of r ≤ ~32 columns:
/// P = M·Q (`n×r`) and Q' = Mᵀ·P (`m×r`), the two products of a PowerSGD step
/// (ALGORITHMS.md §1.3, steps 1 and 4).
///
/// At small r they do 2r flops per element of M, far below what the core can
/// do per byte loaded, so they are memory-bound: the only thing that matters is
/// to read M exactly once, in order. BLAS `sgemm` is tuned for square blocks and
/// re-packs M for tall-skinny shapes; these kernels instead stream M row by row:
/// - M·Q: each row of M meets the r rows of Qᵀ (kept in L1/L2, m·r floats), four
///   dot products per pass over the row;
/// - Mᵀ·P: each row i of M is added, scaled by P[i, k], into r accumulators
///   Q'ᵀ[k, :] (r·m floats, in L2), four per pass; Q'ᵀ is transposed at the end.
/// Sums run in a fixed order (rows ascending; 16 lanes then lanes in order), so
/// the results are deterministic, and identical for any thread count (M·Q: threads
/// split rows; Mᵀ·P: threads split columns, never the sum over rows).
///
/// On CPUs with AVX2 and FMA the products run in the C kernels of `CVectorKernels`
/// (8-lane FMAs, or 16-lane ones on AVX-512 CPUs; the baseline x86-64 target Swift compiles
/// for has neither), whose order of operations `referenceMultiply` and
/// `referenceMultiplyTransposed` repeat in plain scalar loops: the tests compare both vector
/// paths with them bit for bit, so AVX2 and AVX-512 machines get the same results. Elsewhere
/// the portable Swift kernels below run (separate multiply and add, so they agree with the
/// references to rounding).
public enum TallSkinny {

    /// P (n×r) ← M (n×m) · Q (m×r), all row-major.
    public static func multiply(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                                by q: UnsafePointer<Float>, rank r: Int,
                                into p: UnsafeMutablePointer<Float>, threads: Int = 1) {
        multiply(m, rows: n, columns: cols, by: q, rank: r, into: p, threads: threads, kernel: .preferred)
    }

    static func multiply(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                         by q: UnsafePointer<Float>, rank r: Int,
                         into p: UnsafeMutablePointer<Float>, threads: Int, kernel: KernelPath) {
        guard n > 0, r > 0 else { return }
        guard cols > 0 else { p.update(repeating: 0, count: n * r); return }
        // Qᵀ so that each of its rows is contiguous like a row of M.
        let qt = transposed(q, rows: cols, columns: r)
        defer { qt.deallocate() }
        let shared = SendablePointers(m: m, qt: qt, p: p)
        // The AVX-512 and AVX2 kernels take the same lanes and block, so they give the same bits.
        let block = kernel.hasAVX2 ? multiplyBlock(rank: r, columns: cols) : columnBlock(rank: r)
        if kernel.hasAVX2 {
            let vector = kernel == .avx512 ? tall_skinny_multiply_avx512 : tall_skinny_multiply_avx2
            parallelRanges(n, threads: threads) { lo, hi in vector(shared.m, lo, hi, cols, shared.qt, r, block, shared.p) }
            return
        }
        p.update(repeating: 0, count: n * r)
        parallelRanges(n, threads: threads) { lo, hi in
            // Column blocks keep the r·block floats of Qᵀ they touch in L1 while rows stream past.
            var b0 = 0
            while b0 < cols {
                let width = min(block, cols &- b0)
                for i in lo..<hi {
                    let row = shared.m + (i &* cols &+ b0)
                    var k = 0
                    while k < r {
                        let g = min(4, r &- k)
                        let y = shared.qt + (k &* cols &+ b0)
                        // Literal group sizes let the inlined kernel drop its per-lane branches.
                        let d: SIMD4<Float>
                        switch g {
                        case 1: d = dot4(row, y, stride: cols, count: width, rows: 1)
                        case 2: d = dot4(row, y, stride: cols, count: width, rows: 2)
                        case 3: d = dot4(row, y, stride: cols, count: width, rows: 3)
                        default: d = dot4(row, y, stride: cols, count: width, rows: 4)
                        }
                        for t in 0..<g { shared.p[i &* r &+ k &+ t] += d[t] }
                        k &+= 4
                    }
                }
                b0 &+= width
            }
        }
    }

    /// Q' (m×r) ← Mᵀ · P, with M `n×m` and P `n×r`, all row-major.
    public static func multiplyTransposed(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                                          by p: UnsafePointer<Float>, rank r: Int,
                                          into q: UnsafeMutablePointer<Float>, threads: Int = 1) {
        multiplyTransposed(m, rows: n, columns: cols, by: p, rank: r, into: q, threads: threads, kernel: .preferred)
    }

    static func multiplyTransposed(_ m: UnsafePointer<Float>, rows n: Int, columns cols: Int,
                                   by p: UnsafePointer<Float>, rank r: Int,
                                   into q: UnsafeMutablePointer<Float>, threads: Int, kernel: KernelPath) {
        guard cols > 0, r > 0 else { return }
        let qt = UnsafeMutablePointer<Float>.allocate(capacity: r * cols)
        defer { qt.deallocate() }
        qt.initialize(repeating: 0, count: r * cols)
        let shared = SendablePointers(m: m, qt: qt, p: UnsafeMutablePointer(mutating: p))
        // The AVX2 and portable kernels keep the accumulated r·block floats of Q'ᵀ in L1 while all
        // rows stream past. The AVX-512 kernel updates Q'ᵀ once per 4–8 rows, few enough accesses for
        // L2, so it takes whole rows while Q'ᵀ fits there and M is read as one sequential stream
        // (16 KB column blocks, 4 KB per row at r = 4, ran at about half the read bandwidth).
        // The sums are the same for any block.
        let block = kernel == .avx512 ? multiplyBlock(rank: r, columns: cols) : columnBlock(rank: r)
        // Threads own column ranges (multiples of 16 so lanes stay aligned to the same split).
        let blocks = (cols + 15) / 16
        parallelRanges(blocks, threads: threads) { lo, hi in
            let c0 = lo * 16, c1 = min(cols, hi * 16)
            guard c0 < c1 else { return }
            if kernel.hasAVX2 {
                let vector = kernel == .avx512 ? tall_skinny_multiply_transposed_avx512 : tall_skinny_multiply_transposed_avx2
                vector(shared.m, n, cols, shared.p, r, c0, c1, block, shared.qt)
                return
            }
            var b0 = c0
            while b0 < c1 {
                let b1 = min(c1, b0 &+ block)
                for i in 0..<n {
                    let row = shared.m + i &* cols
                    var k = 0
                    while k < r {
                        let g = min(4, r &- k)
                        let c = shared.p + (i &* r &+ k), y = shared.qt + k &* cols
                        switch g {
                        case 1: axpy4(row, coefficients: c, into: y, stride: cols, rows: 1, from: b0, to: b1)
                        case 2: axpy4(row, coefficients: c, into: y, stride: cols, rows: 2, from: b0, to: b1)
                        case 3: axpy4(row, coefficients: c, into: y, stride: cols, rows: 3, from: b0, to: b1)
                        default: axpy4(row, coefficients: c, into: y, stride: cols, rows: 4, from: b0, to: b1)
                        }
                        k &+= 4
                    }
                }
                b0 = b1
            }
        }
        for j in 0..<cols { for k in 0..<r { q[j &* r &+ k] = qt[k &* cols &+ j] } }
    }

    /// A newly allocated `columns×rows` transpose of the `rows×columns` matrix `a` (the caller deallocates).
    static func transposed(_ a: UnsafePointer<Float>, rows: Int, columns: Int) -> UnsafeMutablePointer<Float> {
        let t = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        for i in 0..<rows { for k in 0..<columns { t[k &* rows &+ i] = a[i &* columns &+ k] } }
        return t
    }

    /// Columns per block of the vector M·Q (and of the AVX-512 Mᵀ·P): whole rows while Qᵀ (r·m
    /// floats) fits in L2 (256 KB), so that M is read as one sequential stream (blocks of 4 KB per
    /// row, the 16 KB of Qᵀ at r = 4, restart the hardware prefetcher at every block and ran at
    /// 0.3–0.4 of the read bandwidth); else `columnBlock`, with Qᵀ's block in L1.
    static func multiplyBlock(rank r: Int, columns cols: Int) -> Int {
        r * cols * 4 <= 256 << 10 ? max(1, cols) : columnBlock(rank: r)
    }

    /// Columns per block: about 16 KB of the thin factor (r rows of Qᵀ), a multiple of 16.
    @inline(__always)
    static func columnBlock(rank r: Int) -> Int {
        max(256, (16_384 / (4 * max(1, r))) & ~15)
    }

    /// Up to four dot products of `x` with rows of `ys` (row stride `stride`), one pass over `x`.
    /// Public and inlinable so the fused PowerSGD kernels reuse it at full speed.
    @inlinable @inline(__always)
    public static func dot4(_ x: UnsafePointer<Float>, _ ys: UnsafePointer<Float>, stride: Int, count: Int, rows g: Int) -> SIMD4<Float> {
        // 8-lane accumulators: four of them fit the 16 SSE/AVX registers with room for the loads
        // (16-lane ones spilled at r = 4 and halved the bandwidth).
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        let y0 = ys, y1 = ys + (g > 1 ? stride : 0), y2 = ys + (g > 2 ? 2 * stride : 0), y3 = ys + (g > 3 ? 3 * stride : 0)
        var j = 0
        while j &+ 8 <= count {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            a0 += v * UnsafeRawPointer(y0 + j).loadUnaligned(as: SIMD8<Float>.self)
            if g > 1 { a1 += v * UnsafeRawPointer(y1 + j).loadUnaligned(as: SIMD8<Float>.self) }
            if g > 2 { a2 += v * UnsafeRawPointer(y2 + j).loadUnaligned(as: SIMD8<Float>.self) }
            if g > 3 { a3 += v * UnsafeRawPointer(y3 + j).loadUnaligned(as: SIMD8<Float>.self) }
            j &+= 8
        }
        var result = SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
        while j < count {
            let v = x[j]
            result[0] += v * y0[j]
            if g > 1 { result[1] += v * y1[j] }
            if g > 2 { result[2] += v * y2[j] }
            if g > 3 { result[3] += v * y3[j] }
            j &+= 1
        }
        return result
    }

    /// ysₖ[c0..<c1] += coefficients[k] · x[c0..<c1] for k < g, one pass over x.
    @inline(__always)
    static func axpy4(_ x: UnsafePointer<Float>, coefficients c: UnsafePointer<Float>,
                      into ys: UnsafeMutablePointer<Float>, stride: Int, rows g: Int, from c0: Int, to c1: Int) {
        let s0 = c[0], s1 = g > 1 ? c[1] : 0, s2 = g > 2 ? c[2] : 0, s3 = g > 3 ? c[3] : 0
        let y0 = ys, y1 = ys + (g > 1 ? stride : 0), y2 = ys + (g > 2 ? 2 * stride : 0), y3 = ys + (g > 3 ? 3 * stride : 0)
        var j = c0
        while j &+ 16 <= c1 {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self)
            update(y0 + j, s0, v)
            if g > 1 { update(y1 + j, s1, v) }
            if g > 2 { update(y2 + j, s2, v) }
            if g > 3 { update(y3 + j, s3, v) }
            j &+= 16
        }
        while j < c1 {
            let v = x[j]
            y0[j] += s0 * v
            if g > 1 { y1[j] += s1 * v }
            if g > 2 { y2[j] += s2 * v }
            if g > 3 { y3[j] += s3 * v }
            j &+= 1
        }
    }
}

/// y[0..<16] += s·v
@inline(__always)
func update(_ y: UnsafeMutablePointer<Float>, _ s: Float, _ v: SIMD16<Float>) {
    let old = UnsafeRawPointer(y).loadUnaligned(as: SIMD16<Float>.self)
    UnsafeMutableRawPointer(y).storeBytes(of: old + s * v, as: SIMD16<Float>.self)
}

/// Raw pointers handed to `concurrentPerform` closures; each thread writes a disjoint range.
struct SendablePointers: @unchecked Sendable {
    let m: UnsafePointer<Float>
    let qt: UnsafeMutablePointer<Float>
    let p: UnsafeMutablePointer<Float>
}

/// Runs `body(lo, hi)` over `threads` contiguous parts of `0..<count` (inline when one thread).
public func parallelRanges(_ count: Int, threads: Int, _ body: @Sendable (Int, Int) -> Void) {
    let parts = max(1, min(threads, count))
    if parts == 1 { body(0, count); return }
    DispatchQueue.concurrentPerform(iterations: parts) { t in
        body(count * t / parts, count * (t + 1) / parts)
    }
}
