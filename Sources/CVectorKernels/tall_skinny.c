// See include/vector_kernels.h. The two products of a PowerSGD step at rank r ≤ ~32 are
// memory-bound once each element of M is loaded once and used for all r columns: these kernels
// keep the thin factor's block in L1 or L2 and stream M past it with 8-lane FMAs (16-lane on
// AVX-512 CPUs, with the same lanes and hence the same bits). Only explicit FMA
// intrinsics and `fmaf` multiply-add here (no `a * b + c`, which the compiler may contract or
// not), so the order of operations is the one the header states and the Swift references repeat.
#include "vector_kernels.h"

// No contraction of a * b + c into an FMA: the order of roundings is the one the header states.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>

int vector_kernels_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28;
    if ((c & (fma | osxsave | avx)) != (fma | osxsave | avx)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5))) return 0;  // AVX2
    unsigned xcr0_low, xcr0_high;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    return (xcr0_low & 6) == 6;  // the OS saves the XMM and YMM state
}

int vector_kernels_avx512_available(void) {
    if (!vector_kernels_available()) return 0;
    unsigned a, b, c, d;
    const unsigned f = 1u << 16, cd = 1u << 28, vl = 1u << 31;  // CPUID.7.0:EBX AVX512F, AVX512CD, AVX512VL
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (b & (f | cd | vl)) != (f | cd | vl)) return 0;
    unsigned xcr0_low, xcr0_high;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    // XMM, YMM, opmask, the upper halves of ZMM0–15 and ZMM16–31: all saved by the OS.
    return (xcr0_low & 0xE6) == 0xE6;
}

#define AVX2 __attribute__((target("avx2,fma")))
#define KERNEL AVX2 __attribute__((always_inline)) static inline

// lanes 0..7 (a) and 8..15 (b) of one sum, reduced as ((l + l₊₈) + l₊₄) + l₊₂, then + l₊₁.
KERNEL float reduce16(__m256 a, __m256 b) {
    __m256 s8 = _mm256_add_ps(a, b);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

// `rows` (1 or 2) rows x of one column block (width w) against g (≤ 4) rows y of Qᵀ (stride
// `stride`): sums[t·4 + k] = x_t · y_k. 16 lanes per sum, the w mod 16 last columns by fmaf.
KERNEL void dot_block(const float *x0, const float *x1, size_t rows, const float *y, size_t stride,
                      size_t g, size_t w, float *sums) {
    __m256 a[2][4][2];
    for (size_t t = 0; t < 2; t++) for (size_t k = 0; k < 4; k++) a[t][k][0] = a[t][k][1] = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= w; j += 16) {
        __m256 u0 = _mm256_loadu_ps(x0 + j), u1 = _mm256_loadu_ps(x0 + j + 8);
        __m256 v0 = rows > 1 ? _mm256_loadu_ps(x1 + j) : u0, v1 = rows > 1 ? _mm256_loadu_ps(x1 + j + 8) : u1;
        for (size_t k = 0; k < g; k++) {
            __m256 q0 = _mm256_loadu_ps(y + k * stride + j), q1 = _mm256_loadu_ps(y + k * stride + j + 8);
            a[0][k][0] = _mm256_fmadd_ps(u0, q0, a[0][k][0]);
            a[0][k][1] = _mm256_fmadd_ps(u1, q1, a[0][k][1]);
            if (rows > 1) {
                a[1][k][0] = _mm256_fmadd_ps(v0, q0, a[1][k][0]);
                a[1][k][1] = _mm256_fmadd_ps(v1, q1, a[1][k][1]);
            }
        }
    }
    for (size_t t = 0; t < rows; t++) {
        const float *x = t == 0 ? x0 : x1;
        for (size_t k = 0; k < g; k++) {
            float tail = 0;
            for (size_t l = j; l < w; l++) tail = fmaf(x[l], y[k * stride + l], tail);
            sums[t * 4 + k] = reduce16(a[t][k][0], a[t][k][1]) + tail;
        }
    }
}

// Literal (rows, g) at each call, so the inlined kernel keeps its accumulators in registers.
KERNEL void dot_block_dispatch(const float *x0, const float *x1, size_t rows, const float *y, size_t stride,
                               size_t g, size_t w, float *sums) {
    if (rows == 2) {
        switch (g) {
        case 1: dot_block(x0, x1, 2, y, stride, 1, w, sums); break;
        default: dot_block(x0, x1, 2, y, stride, 2, w, sums); break;
        }
    } else {
        switch (g) {
        case 1: dot_block(x0, x0, 1, y, stride, 1, w, sums); break;
        case 2: dot_block(x0, x0, 1, y, stride, 2, w, sums); break;
        case 3: dot_block(x0, x0, 1, y, stride, 3, w, sums); break;
        default: dot_block(x0, x0, 1, y, stride, 4, w, sums); break;
        }
    }
}

AVX2 void tall_skinny_multiply_avx2(const float *m, size_t row_begin, size_t row_end, size_t cols,
                                    const float *qt, size_t r, size_t block, float *p) {
    for (size_t i = row_begin; i < row_end; i++) for (size_t k = 0; k < r; k++) p[i * r + k] = 0;
    for (size_t b0 = 0; b0 < cols; b0 += block) {
        size_t w = cols - b0 < block ? cols - b0 : block;
        for (size_t i = row_begin; i < row_end;) {
            // Two rows share each load of Qᵀ where their accumulators fit the 16 registers (r ≤ 2).
            size_t rows = r <= 2 && i + 1 < row_end ? 2 : 1;
            for (size_t k = 0; k < r; k += 4) {
                size_t g = r - k < 4 ? r - k : 4;
                float sums[8];
                dot_block_dispatch(m + i * cols + b0, m + (i + rows - 1) * cols + b0, rows, qt + k * cols + b0, cols, g, w, sums);
                for (size_t t = 0; t < rows; t++)
                    for (size_t u = 0; u < g; u++) p[(i + t) * r + k + u] += sums[t * 4 + u];
            }
            i += rows;
        }
    }
}

// qt_k[j] = fma(c[t·r + k], x_t[j], qt_k[j]) for t < rows in order, k < g, j in [c0, c1): `rows`
// rows x of M (stride `stride`) with their coefficient rows c of P, into g rows of Q'ᵀ.
// The g partial sums stay in registers across the `rows` rows (one load and store per 8 columns
// and `rows` rows); their coefficients are broadcast once per call.
KERNEL void axpy_block(const float *x, size_t stride, size_t rows, const float *c, size_t r,
                       float *y, size_t ystride, size_t g, size_t c0, size_t c1) {
    __m256 s[4][4];
    for (size_t t = 0; t < rows; t++) for (size_t k = 0; k < g; k++) s[t][k] = _mm256_broadcast_ss(c + t * r + k);
    size_t j = c0;
    for (; j + 8 <= c1; j += 8) {
        __m256 a[4];
        for (size_t k = 0; k < g; k++) a[k] = _mm256_loadu_ps(y + k * ystride + j);
        for (size_t t = 0; t < rows; t++) {
            __m256 v = _mm256_loadu_ps(x + t * stride + j);
            for (size_t k = 0; k < g; k++) a[k] = _mm256_fmadd_ps(s[t][k], v, a[k]);
        }
        for (size_t k = 0; k < g; k++) _mm256_storeu_ps(y + k * ystride + j, a[k]);
    }
    for (; j < c1; j++)
        for (size_t k = 0; k < g; k++) {
            float a = y[k * ystride + j];
            for (size_t t = 0; t < rows; t++) a = fmaf(c[t * r + k], x[t * stride + j], a);
            y[k * ystride + j] = a;
        }
}

// Literal (rows, g): 4 rows for r ≤ 2, 2 rows otherwise keep the broadcasts and sums in registers.
KERNEL void axpy_block_dispatch(const float *x, size_t stride, size_t rows, const float *c, size_t r,
                                float *y, size_t ystride, size_t g, size_t c0, size_t c1) {
#define CASE(R, G) if (rows == R && g == G) { axpy_block(x, stride, R, c, r, y, ystride, G, c0, c1); return; }
    CASE(4, 1) CASE(4, 2) CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
#undef CASE
}

AVX2 void tall_skinny_multiply_transposed_avx2(const float *m, size_t rows, size_t cols,
                                               const float *p, size_t r,
                                               size_t col_begin, size_t col_end, size_t block, float *qt) {
    for (size_t b0 = col_begin; b0 < col_end; b0 += block) {
        size_t b1 = col_end - b0 < block ? col_end : b0 + block;
        // Rows outer, groups of 4 columns of P inner: the rows' block of M is read from memory once.
        size_t step = r <= 2 ? 4 : 2, i = 0;
        for (; i < rows; i += step) {
            if (i + step > rows) step = 1;
            for (size_t k = 0; k < r; k += 4) {
                size_t g = r - k < 4 ? r - k : 4;
                axpy_block_dispatch(m + i * cols, cols, step, p + i * r + k, r, qt + k * cols, cols, g, b0, b1);
            }
        }
    }
}

#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define KERNEL512 AVX512 __attribute__((always_inline)) static inline

// One zmm holds a sum's 16 lanes (j mod 16) exactly as the AVX2 kernel's two ymm do (lanes 0–7,
// 8–15), and the same FMAs run per lane in ascending j, so the lane sums, their reduction and the
// results are the AVX2 kernel's bit for bit. What differs is only the blocking: `rows` rows at a
// time share each load of Qᵀ (rows·g accumulators, see `dot_rows512`).
// `ahead` (the next group's rows, same stride and columns) is prefetched into L2 line by line: at
// 16 FMAs per line (rank 4) the hardware prefetcher alone does not stay far enough ahead and the
// pass waits on memory (about 0.55 of the read bandwidth on a Zen 4 EPYC, 0.7–0.85 with this).
// One group ahead is 74–147 KB, far past the memory latency and well inside L2; into L1 (32 KB)
// the lines were evicted before use.
KERNEL512 void dot_block512(const float *x, const float *ahead, size_t stride, size_t rows, const float *y,
                            size_t ystride, size_t g, size_t w, float *sums) {
    __m512 a[8][4];
    for (size_t t = 0; t < rows; t++) for (size_t k = 0; k < g; k++) a[t][k] = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= w; j += 16) {
        for (size_t t = 0; t < rows; t++) _mm_prefetch((const char *)(ahead + t * stride + j), _MM_HINT_T1);
        __m512 q[4];
        for (size_t k = 0; k < g; k++) q[k] = _mm512_loadu_ps(y + k * ystride + j);
        for (size_t t = 0; t < rows; t++) {
            __m512 v = _mm512_loadu_ps(x + t * stride + j);
            for (size_t k = 0; k < g; k++) a[t][k] = _mm512_fmadd_ps(v, q[k], a[t][k]);
        }
    }
    for (size_t t = 0; t < rows; t++)
        for (size_t k = 0; k < g; k++) {
            float tail = 0;
            for (size_t l = j; l < w; l++) tail = fmaf(x[t * stride + l], y[k * ystride + l], tail);
            __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[t][k]), 1));
            sums[t * 4 + k] = reduce16(_mm512_castps512_ps256(a[t][k]), high) + tail;
        }
}

// Rows per pass of the AVX-512 M·Q at rank r: 8 for r ≤ 4 (each load of Qᵀ serves 8 rows, each
// row's load all r columns), else 4 per group of ≤ 4 columns. At r = 4 the 32 accumulators and
// the loads exceed the 32 registers and the compiler keeps a few in L1; that costs less than what
// 4 rows per pass lose waiting on memory (8 streams, prefetched 8 rows ahead: about 1.3× the GB/s
// of 4 rows on a Zen 4 EPYC). At r ≥ 8 the two were alike.
static size_t dot_rows512(size_t r) { return r <= 4 ? 8 : 4; }

// Literal (rows, g) at each call, so the inlined kernel keeps its accumulators in registers.
KERNEL512 void dot_block512_dispatch(const float *x, const float *ahead, size_t stride, size_t rows, const float *y,
                                     size_t ystride, size_t g, size_t w, float *sums) {
#define CASE(R, G) if (rows == R && g == G) { dot_block512(x, ahead, stride, R, y, ystride, G, w, sums); return; }
    CASE(8, 1) CASE(8, 2) CASE(8, 3) CASE(8, 4) CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
#undef CASE
}

AVX512 void tall_skinny_multiply_avx512(const float *m, size_t row_begin, size_t row_end, size_t cols,
                                        const float *qt, size_t r, size_t block, float *p) {
    for (size_t i = row_begin; i < row_end; i++) for (size_t k = 0; k < r; k++) p[i * r + k] = 0;
    for (size_t b0 = 0; b0 < cols; b0 += block) {
        size_t w = cols - b0 < block ? cols - b0 : block;
        // Rows outer, groups of 4 columns of Q inner: the rows' block of M is read from memory once.
        size_t step = dot_rows512(r);
        for (size_t i = row_begin; i < row_end;) {
            size_t rows = i + step <= row_end ? step : 1;
            const float *x = m + i * cols + b0, *ahead = i + 2 * rows <= row_end ? x + rows * cols : x;
            for (size_t k = 0; k < r; k += 4) {
                size_t g = r - k < 4 ? r - k : 4;
                float sums[32];
                dot_block512_dispatch(x, ahead, cols, rows, qt + k * cols + b0, cols, g, w, sums);
                for (size_t t = 0; t < rows; t++)
                    for (size_t u = 0; u < g; u++) p[(i + t) * r + k + u] += sums[t * 4 + u];
            }
            i += rows;
        }
    }
}

// qt_k[j] = fma(c[t·r + k], x_t[j], qt_k[j]) for t < rows in order, k < g, j in [c0, c1), as
// `axpy_block`, 16 columns per step; the last c1 − c0 mod 16 columns under a mask (the lanes are
// independent, so the order per element is the same). `ahead` is prefetched into L2 as in
// `dot_block512` (rank 4 on the same CPU: about 0.5 of the read bandwidth without, 0.85–1.0 with).
KERNEL512 void axpy_block512(const float *x, const float *ahead, size_t stride, size_t rows, const float *c, size_t r,
                             float *y, size_t ystride, size_t g, size_t c0, size_t c1) {
    __m512 s[8][4];
    for (size_t t = 0; t < rows; t++) for (size_t k = 0; k < g; k++) s[t][k] = _mm512_set1_ps(c[t * r + k]);
    size_t j = c0;
    for (; j + 16 <= c1; j += 16) {
        for (size_t t = 0; t < rows; t++) _mm_prefetch((const char *)(ahead + t * stride + j), _MM_HINT_T1);
        __m512 a[4];
        for (size_t k = 0; k < g; k++) a[k] = _mm512_loadu_ps(y + k * ystride + j);
        for (size_t t = 0; t < rows; t++) {
            __m512 v = _mm512_loadu_ps(x + t * stride + j);
            for (size_t k = 0; k < g; k++) a[k] = _mm512_fmadd_ps(s[t][k], v, a[k]);
        }
        for (size_t k = 0; k < g; k++) _mm512_storeu_ps(y + k * ystride + j, a[k]);
    }
    if (j < c1) {
        __mmask16 mask = (__mmask16)((1u << (c1 - j)) - 1);
        __m512 a[4];
        for (size_t k = 0; k < g; k++) a[k] = _mm512_maskz_loadu_ps(mask, y + k * ystride + j);
        for (size_t t = 0; t < rows; t++) {
            __m512 v = _mm512_maskz_loadu_ps(mask, x + t * stride + j);
            for (size_t k = 0; k < g; k++) a[k] = _mm512_fmadd_ps(s[t][k], v, a[k]);
        }
        for (size_t k = 0; k < g; k++) _mm512_mask_storeu_ps(y + k * ystride + j, mask, a[k]);
    }
}

// Rows per pass of the AVX-512 Mᵀ·P at rank r: at most 16 broadcast coefficients per group of ≤ 4
// columns in registers beside its partial sums (8 rows at r ≤ 2, else 4), so each load and store
// of Q'ᵀ serves 4–8 rows.
static size_t axpy_rows512(size_t r) { return r <= 2 ? 8 : 4; }

KERNEL512 void axpy_block512_dispatch(const float *x, const float *ahead, size_t stride, size_t rows, const float *c,
                                      size_t r, float *y, size_t ystride, size_t g, size_t c0, size_t c1) {
#define CASE(R, G) if (rows == R && g == G) { axpy_block512(x, ahead, stride, R, c, r, y, ystride, G, c0, c1); return; }
    CASE(8, 1) CASE(8, 2) CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
#undef CASE
}

AVX512 void tall_skinny_multiply_transposed_avx512(const float *m, size_t rows, size_t cols,
                                                   const float *p, size_t r,
                                                   size_t col_begin, size_t col_end, size_t block, float *qt) {
    for (size_t b0 = col_begin; b0 < col_end; b0 += block) {
        size_t b1 = col_end - b0 < block ? col_end : b0 + block;
        // Rows outer, groups of 4 columns of P inner: the rows' block of M is read from memory once.
        size_t step = axpy_rows512(r);
        for (size_t i = 0; i < rows;) {
            size_t n = i + step <= rows ? step : 1;
            const float *x = m + i * cols, *ahead = i + 2 * n <= rows ? x + n * cols : x;
            for (size_t k = 0; k < r; k += 4) {
                size_t g = r - k < 4 ? r - k : 4;
                axpy_block512_dispatch(x, ahead, cols, n, p + i * r + k, r, qt + k * cols, cols, g, b0, b1);
            }
            i += n;
        }
    }
}

#else

int vector_kernels_available(void) { return 0; }
int vector_kernels_avx512_available(void) { return 0; }
void tall_skinny_multiply_avx2(const float *m, size_t row_begin, size_t row_end, size_t cols,
                               const float *qt, size_t r, size_t block, float *p) {}
void tall_skinny_multiply_transposed_avx2(const float *m, size_t rows, size_t cols, const float *p, size_t r,
                                          size_t col_begin, size_t col_end, size_t block, float *qt) {}
void tall_skinny_multiply_avx512(const float *m, size_t row_begin, size_t row_end, size_t cols,
                                 const float *qt, size_t r, size_t block, float *p) {}
void tall_skinny_multiply_transposed_avx512(const float *m, size_t rows, size_t cols, const float *p, size_t r,
                                            size_t col_begin, size_t col_end, size_t block, float *qt) {}

#endif
