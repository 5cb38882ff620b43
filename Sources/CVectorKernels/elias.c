// See include/vector_kernels.h (qsgd_elias_append_avx2) and GradientCompression's QSGD and
// EliasGamma: γ(k), k ≥ 1, z = ⌊log₂ k⌋, is z zero bits, a one, then k's low z bits, written
// least significant bit first, so its field is (k − 2ᶻ) << (z + 1) | 1 << z in 2z + 1 bits.
#include "vector_kernels.h"

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512cd")))

// PositionedBits.append: the low `bits` (≤ 56) bits of `value` at the stream's end.
static inline void append(qsgd_elias_stream *s, uint64_t value, int bits, unsigned char *base) {
    uint64_t mask = bits >= 64 ? ~0ull : (1ull << bits) - 1;
    uint64_t pending = s->pending | (value & mask) << (s->bit & 7);
    memcpy(base + (s->bit >> 3), &pending, 8);  // little-endian
    long long next = s->bit + bits;
    int shift = (int)((next & ~7ll) - (s->bit & ~7ll));
    s->pending = shift >= 64 ? 0 : pending >> shift;
    s->bit = next;
}

// γ(k) for 1 ≤ k < 2³², as two appends of at most 32 bits.
AVX2 static inline void append_gamma(qsgd_elias_stream *s, uint64_t k, unsigned char *base) {
    int z = 63 - (int)__builtin_clzll(k);
    append(s, 0, z, base);
    append(s, ((k ^ (1ull << z)) << 1) | 1, z + 1, base);
}

// One element, whatever its code lengths.
AVX2 static inline void append_element(qsgd_elias_stream *s, uint32_t w, long long position, unsigned char *base) {
    uint32_t level = w & 0x7FFFFFFF;
    if (level == 0) return;
    append_gamma(s, (uint64_t)(position - s->last), base);
    append(s, w >> 31, 1, base);
    append_gamma(s, level, base);
    s->last = position;
}

// For each 8-bit nonzero mask and lane l: l − p for the highest set bit p < l, or 0 when none.
static int32_t previous_gap[256][8];

// Filled when the library loads, before any thread can call the encoder.
__attribute__((constructor)) static void fill_previous_gap(void) {
    for (int m = 0; m < 256; m++)
        for (int l = 0; l < 8; l++) {
            int g = 0;
            for (int p = l - 1; p >= 0; p--) if (m >> p & 1) { g = l - p; break; }
            previous_gap[m][l] = g;
        }
}

// ⌊log₂ x⌋ per lane for 1 ≤ x < 2³¹: the exponent of float(x), less one where rounding carried
// it up a power of two (x just below 2ᵏ for k > 24).
AVX2 static inline __m256i floor_log2_avx2(__m256i x) {
    __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(x)), 23), _mm256_set1_epi32(127));
    __m256i power = _mm256_sllv_epi32(_mm256_set1_epi32(1), e);
    return _mm256_add_epi32(e, _mm256_cmpgt_epi32(power, x));  // −1 where 2ᵉ > x
}

// ⌊log₂ x⌋ per lane for x ≥ 1 from AVX-512CD's count of leading zeros: 2 instructions for the 6
// above, of the ~100 per eight codes.
AVX512 static inline __m256i floor_log2_avx512(__m256i x) {
    return _mm256_sub_epi32(_mm256_set1_epi32(31), _mm256_lzcnt_epi32(x));
}

AVX2 static inline __m256i gamma_field(__m256i x, __m256i z) {
    __m256i one = _mm256_set1_epi32(1), top = _mm256_sllv_epi32(one, z);
    return _mm256_or_si256(_mm256_sllv_epi32(_mm256_sub_epi32(x, top), _mm256_add_epi32(z, one)), top);
}

// The OR of the four 64-bit lanes.
AVX2 static inline uint64_t or_lanes(__m256i x) {
    __m128i half = _mm_or_si128(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    return (uint64_t)_mm_cvtsi128_si64(_mm_or_si128(half, _mm_unpackhi_epi64(half, half)));
}

#define ELIAS_ATTR AVX2
#define ELIAS_NAME qsgd_elias_append_avx2
#define FLOOR_LOG2 floor_log2_avx2
#include "elias_append_lanes.h"
#undef ELIAS_ATTR
#undef ELIAS_NAME
#undef FLOOR_LOG2

#define ELIAS_ATTR AVX512
#define ELIAS_NAME qsgd_elias_append_avx512
#define FLOOR_LOG2 floor_log2_avx512
#include "elias_append_lanes.h"

#else

size_t qsgd_elias_append_avx2(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                              unsigned char *base) { return 0; }
size_t qsgd_elias_append_avx512(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                                unsigned char *base) { return 0; }

#endif
