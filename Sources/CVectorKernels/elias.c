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
AVX2 static inline __m256i floor_log2(__m256i x) {
    __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(x)), 23), _mm256_set1_epi32(127));
    __m256i power = _mm256_sllv_epi32(_mm256_set1_epi32(1), e);
    return _mm256_add_epi32(e, _mm256_cmpgt_epi32(power, x));  // −1 where 2ᵉ > x
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

AVX2 size_t qsgd_elias_append_avx2(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                                   unsigned char *base) {
    qsgd_elias_stream s = *stream;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF), zero = _mm256_setzero_si256();
    size_t nonzeros = 0, j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(words + j));
        __m256i level = _mm256_and_si256(w, magnitude);
        __m256i nonzero = _mm256_cmpgt_epi32(level, zero);
        unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(nonzero));
        if (mask == 0) continue;
        long long position = start + (long long)j;
        nonzeros += (size_t)__builtin_popcount(mask);
        // Gaps: to the previous nonzero of these eight, else to the stream's last one.
        __m256i inner = _mm256_loadu_si256((const __m256i *)previous_gap[mask]);
        __m256i outer = _mm256_add_epi32(_mm256_set1_epi32((int)(position - s.last)), lanes);
        __m256i gap = _mm256_blendv_epi8(inner, outer, _mm256_cmpeq_epi32(inner, zero));
        __m256i safeLevel = _mm256_max_epi32(level, one);  // zero lanes are masked off below
        __m256i zg = floor_log2(gap), zl = floor_log2(safeLevel);
        __m256i lengthG = _mm256_add_epi32(_mm256_add_epi32(zg, zg), one);
        __m256i lengthL = _mm256_add_epi32(_mm256_add_epi32(zl, zl), one);
        __m256i length = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(lengthG, lengthL), one), nonzero);
        long long last = position + 31 - __builtin_clz(mask);
        if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(length, _mm256_set1_epi32(32)))) != 0) {
            for (int l = 0; l < 8; l++) append_element(&s, words[j + l], position + l, base);
            continue;
        }
        __m256i sign = _mm256_srli_epi32(w, 31);
        __m256i code = _mm256_or_si256(gamma_field(gap, zg), _mm256_sllv_epi32(sign, lengthG));
        code = _mm256_or_si256(code, _mm256_sllv_epi32(gamma_field(safeLevel, zl), _mm256_add_epi32(lengthG, one)));
        code = _mm256_and_si256(code, nonzero);
        // Exclusive prefix sums of the lengths within each 128-bit half (each code's offset in its
        // half of four joined), and across both (each code's offset in the eight joined).
        __m256i half = _mm256_add_epi32(length, _mm256_slli_si256(length, 4));
        half = _mm256_add_epi32(half, _mm256_slli_si256(half, 8));
        int lowTotal = _mm256_extract_epi32(half, 3), highTotal = _mm256_extract_epi32(half, 7);
        __m256i sum = _mm256_add_epi32(half, _mm256_blend_epi32(zero, _mm256_set1_epi32(lowTotal), 0xF0));
        int total = lowTotal + highTotal;
        if (lowTotal > 56 || highTotal > 56) {
            uint32_t codes[8], lengths[8];
            _mm256_storeu_si256((__m256i *)codes, code);
            _mm256_storeu_si256((__m256i *)lengths, length);
            for (int l = 0; l < 8; l++) append(&s, codes[l], (int)lengths[l], base);
        } else {
            // One append of the eight codes joined when they fit 56 bits, else one per half.
            __m256i offset = _mm256_sub_epi32(total <= 56 ? sum : half, length);
            __m256i low = _mm256_sllv_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(code)),
                                            _mm256_cvtepu32_epi64(_mm256_castsi256_si128(offset)));
            __m256i high = _mm256_sllv_epi64(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(code, 1)),
                                             _mm256_cvtepu32_epi64(_mm256_extracti128_si256(offset, 1)));
            if (total <= 56) {
                append(&s, or_lanes(_mm256_or_si256(low, high)), total, base);
            } else {
                append(&s, or_lanes(low), lowTotal, base);
                append(&s, or_lanes(high), highTotal, base);
            }
        }
        s.last = last;
    }
    for (; j < count; j++) {
        nonzeros += (words[j] & 0x7FFFFFFF) != 0;
        append_element(&s, words[j], start + (long long)j, base);
    }
    *stream = s;
    return nonzeros;
}

#else

size_t qsgd_elias_append_avx2(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
                              unsigned char *base) { return 0; }

#endif
