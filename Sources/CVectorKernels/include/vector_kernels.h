// Kernels that need AVX2 and FMA: the tall-skinny products of PowerSGD (LinearAlgebra's
// `TallSkinny`) and the bit packing of the sign and ternary quantizers; and QSGD's Elias decoder,
// plain C for every CPU but for its final pass (its loop is a serial bit-position chain that
// Swift kept in memory).
//
// Swift cannot enable a target feature for one function, and the default x86-64 target has
// neither AVX2 nor FMA, so these are C compiled with `__attribute__((target("avx2,fma")))`. They
// must only be called when `vector_kernels_available()` returns 1 (a CPUID check the caller does
// once); the tall-skinny products' `_avx512` versions (`target("avx512f,avx512vl,avx2,fma")`) only
// when `vector_kernels_avx512_available()` does. The Swift callers keep a portable path for other
// CPUs and a plain reference kernel that the tests compare these with.
#ifndef VECTOR_KERNELS_H
#define VECTOR_KERNELS_H

#include <stddef.h>

/// 1 if the CPU and OS support AVX2 and FMA (CPUID.1:ECX FMA/OSXSAVE/AVX, CPUID.7:EBX AVX2 and
/// XCR0's SSE/AVX state), else 0 (always 0 off x86-64).
int vector_kernels_available(void);

/// p[i·r + k] = Σⱼ m[i·cols + j] · qt[k·cols + j] for i in [row_begin, row_end), k < r.
/// `qt` is Qᵀ (r×cols, row-major). Columns are taken in blocks of `block` columns;
/// within a block each (i, k) sums 16 lanes (j mod 16 for the first ⌊w/16⌋·16 columns of the
/// block) with FMA in ascending j, the rest by `fmaf` in ascending j; the lanes are
/// reduced as ((l + l₊₈) + l₊₄) + l₊₂, then + l₊₁, the rest added, and the block's sum added to
/// p[i·r + k] (which starts at 0).
/// The result depends only on the inputs and `block`, not on how rows are split.
void tall_skinny_multiply_avx2(const float *m, size_t row_begin, size_t row_end, size_t cols,
                               const float *qt, size_t r, size_t block, float *p);

/// qt[k·cols + j] = fma(p[i·r + k], m[i·cols + j], qt[k·cols + j]) for i = 0, 1, ..., rows − 1 in
/// order, j in [col_begin, col_end), k < r: exactly the scalar loop `q = fmaf(p, m, q)` over
/// rows ascending, so the result is bit-identical to that loop for any split of the columns.
/// `qt` (r×cols) holds Q'ᵀ and must start zeroed. Columns are taken in blocks of `block`.
void tall_skinny_multiply_transposed_avx2(const float *m, size_t rows, size_t cols,
                                          const float *p, size_t r,
                                          size_t col_begin, size_t col_end, size_t block, float *qt);

/// 1 if, beyond `vector_kernels_available()`, the CPU and OS support AVX-512F, AVX-512CD and
/// AVX-512VL (CPUID.7:EBX bits 16, 28 and 31; XCR0's opmask and ZMM state, bits 5–7), else 0.
int vector_kernels_avx512_available(void);

/// `tall_skinny_multiply_avx2` in 16-lane zmm registers: the same lanes, FMAs and reduction, so
/// the same bits for the same `block`. Only where `vector_kernels_avx512_available()`.
void tall_skinny_multiply_avx512(const float *m, size_t row_begin, size_t row_end, size_t cols,
                                 const float *qt, size_t r, size_t block, float *p);

/// `tall_skinny_multiply_transposed_avx2` in zmm registers: the same scalar `fmaf` loop over rows
/// ascending, bit for bit, for any `block` and split of the columns. Only where
/// `vector_kernels_avx512_available()`.
void tall_skinny_multiply_transposed_avx512(const float *m, size_t rows, size_t cols,
                                            const float *p, size_t r,
                                            size_t col_begin, size_t col_end, size_t block, float *qt);

/// TernGrad's statistics in one pass: max |xᵢ| by the 31-bit magnitude patterns as signed
/// integers (NaN above Inf, like `maximumMagnitude`), and when `moments` is nonzero Σxᵢ and Σxᵢ²
/// exactly as TernGrad's portable `clipBound` sums them: blocks of 256 in 8 fp32 lanes (x and
/// x·x rounded, then added), each block's lanes added in order 0…7 to a fp64 total, the last
/// n mod 256 elements added to it one by one in fp64.
float terngrad_statistics_avx2(const float *x, size_t n, int moments, double *sum, double *sum_squares);

/// TernGrad's 2-bit fields of 8·`groups` elements, 2 bytes per 8 (little-endian; element j of a
/// group in bits 2j, 2j + 1: 01 kept positive, 11 kept negative, 00 dropped), with
/// kept = U < min(|x|, scaler)·inverse and U from the eight xoshiro128+ lanes in `lanes`
/// (s0[0..8), s1, s2, s3: `UniformLanes`' state, advanced one step per group).
void terngrad_fields_avx2(const float *x, size_t groups, unsigned *lanes, float scaler, float inverse,
                          unsigned char *out);

/// 1-bit SGD's encoding pass over an n×m row-major matrix (count = n·m elements), in one read:
/// bits[e/8] bit e mod 8 = [x_e ≥ 0] for every element e, and the column statistics in the
/// order `OneBitSGD.columnStatistics` (the portable path) states: per block of 64 rows, lane
/// sums p = e mod `period` (period = lcm(8, m), a divisor of 64m) in fp32 in ascending e of
/// min(x, 0) (as 0 < x ? 0 : x) and max(x, 0) (as 0 ≥ x ? 0 : x) and a count of x < 0, then
/// added in ascending p to column p mod m of the fp64 sums and the counts. `lanes` is scratch of
/// 3·period floats. Returns 0 if an element is NaN or ±Inf (the outputs are then unspecified), else 1.
int onebit_encode_avx2(const float *x, size_t rows, size_t m, size_t period, float *lanes,
                       double *negative_sum, double *positive_sum, long long *negative_count, unsigned char *bits);

/// QSGD's level words of one bucket (`QSGD.levelWords` for s < 2²³, step for step): for each
/// element, a = min(|x|·factor, s), ζ = ⌊a⌋ + [U < a − ⌊a⌋] (⌊a⌋ by the 2²³ trick), clamped to s,
/// written as ζ | [x < 0] << 31; U from the eight xoshiro128+ lanes in `lanes` (`UniformLanes`'
/// state), one step per eight elements, the last count mod 8 against zero padding. Returns the
/// count of nonzero levels.
size_t qsgd_levels_avx2(const float *x, size_t count, unsigned *lanes, float factor, float levels, unsigned *words);

/// One QSGD Elias stream being written (GradientCompression's `PositionedBits` and the stream
/// position of its last nonzero): `bit` counts bits from the shared base, `pending` holds the
/// bits of byte bit/8 written so far (below bit mod 8, zeros above).
typedef struct {
    long long bit;
    unsigned long long pending;
    long long last;
} qsgd_elias_stream;

/// Appends QSGD's Elias codes of one bucket's level words (ζ | sign << 31; element j at stream
/// position start + j) to `stream`: for each nonzero level, γ(position − last), the sign bit,
/// γ(ζ), least significant bit first — the same bits as the portable Swift encoder. Eight words
/// per step: gaps from a table of the nonzero mask, code lengths from the float exponent, their
/// prefix sums in the vector, and one append of the eight codes joined in a register (two of four
/// when eight exceed 56 bits, element by element when four do). Needs start + count ≤ 2³⁰ and the stream's buffer to
/// have 8 writable bytes past its last code. Returns the count of nonzero levels.
size_t qsgd_elias_append_avx2(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                              unsigned char *base);
/// `qsgd_elias_append_avx2` with AVX-512VL/CD's leading-zero counts for the code lengths: the same
/// bits. Only where `vector_kernels_avx512_available()`.
size_t qsgd_elias_append_avx512(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                                unsigned char *base);

/// Why `qsgd_elias_decode` failed (0: it decoded).
enum {
    QSGD_ELIAS_TRUNCATED = 1,          ///< the stream ends inside a code
    QSGD_ELIAS_CODE_TOO_LONG = 2,      ///< a gamma code with more than 63 leading zeros
    QSGD_ELIAS_LEVEL_ABOVE_S = 3,      ///< a level above s (`value`)
    QSGD_ELIAS_GAP_BEYOND_TENSOR = 4,  ///< a nonzero `value` positions on, past the stream's end
    QSGD_ELIAS_TRAILING_BITS = 5,      ///< `value` ≥ 8 bits left after the last code
    QSGD_ELIAS_NONZERO_PADDING = 6,    ///< the last byte's padding bits are not zero
};

/// Where `qsgd_elias_decode` found a fault: the stream, the position of a nonzero read before it
/// (−1: none), and the offending level, distance from that position, or bit count.
typedef struct {
    int stream;
    long long position;
    unsigned long long value;
} qsgd_elias_fault;

/// QSGD's two Elias streams (stream k: buckets k, k + 2, ... of `bucket` elements; n elements in
/// all) decoded and added into `out`: for each of stream k's `nonzerosₖ` codes γ(gap), sign,
/// γ(ζ) (least significant bit first), out[i] += ±((units[2b] · ζ) · units[2b + 1]) for the
/// element i the gaps lead to and its bucket b; elements without a code are left as they are.
/// Every read is checked against `bytesₖ`, and nothing is added before both streams are read
/// and checked: on a fault the function returns its kind (the enum above) with `fault` filled
/// and `out` untouched. `scratch` holds (E₀ + E₁ + 128)·w bytes, Eₖ = the elements of stream k
/// (`qsgd_elias_stream_elements`), w = 1 for s ≤ 127, else 4. Returns 0 when both streams
/// decoded and ended in zero padding. `path` chooses how the final pass over `out` is compiled
/// (one of the values below; AVX2 only where `vector_kernels_available()`, AVX-512 only where
/// `vector_kernels_avx512_available()`): the same operations in every lane, so the same bits.
int qsgd_elias_decode(const unsigned char *stream0, size_t bytes0, size_t nonzeros0,
                      const unsigned char *stream1, size_t bytes1, size_t nonzeros1,
                      size_t n, size_t bucket, const float *units, unsigned long long levels,
                      void *scratch, float *out, qsgd_elias_fault *fault, int path);

/// `qsgd_elias_decode`'s `path`.
enum {
    QSGD_ELIAS_PORTABLE = 0,
    QSGD_ELIAS_AVX2 = 1,
    QSGD_ELIAS_AVX512 = 2,
};

/// The elements of QSGD Elias stream k (0 or 1) of an n-element tensor: those of the buckets b
/// with b % 2 = k.
size_t qsgd_elias_stream_elements(size_t n, size_t bucket, int k);

/// PowerSGD's first pass over an n×m matrix (GradientCompression's `LowRankKernels.project`), for
/// 1 ≤ r ≤ 8. Per row i, element by element: v = g; if `e`: v = v + e, then if `cp` (the pending
/// residual's factors, cp n×r and cqt r×m row-major) v = fma(−cp[i,k], cqt[k,j], v) for k < r in
/// order, and e = v (M is stored in place of E). Then p[i·r + k] = 0 + (Σⱼ v·qt[k·m + j]) and
/// ‖M‖² in the order of `tall_skinny_multiply_avx2` with one block of m columns: 16 FMA lanes over
/// the first ⌊m/16⌋·16 columns, reduced as ((l + l₊₈) + l₊₄) + l₊₂, then + l₊₁, plus an `fmaf` sum
/// of the rest. Returns Σᵢ (double)(row i's ‖M‖²). `_avx2` needs `vector_kernels_available()`,
/// `_avx512` `vector_kernels_avx512_available()`; both give the same bits.
double low_rank_project_avx2(const float *g, float *e, const float *cp, const float *cqt, size_t n, size_t m,
                             const float *qt, size_t r, float *p);
double low_rank_project_avx512(const float *g, float *e, const float *cp, const float *cqt, size_t n, size_t m,
                               const float *qt, size_t r, float *p);

/// PowerSGD's output pass, for 1 ≤ r ≤ 8: out[i·m + j] = s after s = 0, s = fma(pHat[i·r + k],
/// qt[k·m + j], s) for k < r in order (`qt` r×m). With `stream` nonzero (and m a multiple of 16),
/// the stores bypass the caches: for an output that is read again only after more data than the
/// caches hold has passed. Availability as `low_rank_project_*`.
void low_rank_expand_avx2(const float *pHat, size_t r, const float *qt, size_t n, size_t m, float *out, int stream);
void low_rank_expand_avx512(const float *pHat, size_t r, const float *qt, size_t n, size_t m, float *out, int stream);

#endif
