// See include/vector_kernels.h: the per-element passes of TernGrad, in 8-lane AVX2, with the
// arithmetic of the portable Swift code (GradientCompression's TernGrad) step for step, so the
// messages are the same bytes on every CPU.
#include "vector_kernels.h"

// No contraction of a * b + c into an FMA: the order of roundings is the one the header states.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))

// (((0 + l₀) + l₁) + …) + l₇, the order of Swift's `SIMD8.sum()`.
AVX2 static inline float lane_sum(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    float s = l[0];
    for (int k = 1; k < 8; k++) s += l[k];
    return s;
}

AVX2 float terngrad_statistics_avx2(const float *x, size_t n, int moments, double *sum, double *sum_squares) {
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i largest = _mm256_setzero_si256();
    size_t i = 0;
    double s = 0, q = 0;
    if (moments) {
        for (; i + 256 <= n; i += 256) {
            __m256 bs = _mm256_setzero_ps(), bq = _mm256_setzero_ps();
            for (size_t k = 0; k < 256; k += 8) {
                __m256 v = _mm256_loadu_ps(x + i + k);
                largest = _mm256_max_epi32(largest, _mm256_and_si256(_mm256_castps_si256(v), magnitude));
                bs = _mm256_add_ps(bs, v);
                bq = _mm256_add_ps(bq, _mm256_mul_ps(v, v));
            }
            s += (double)lane_sum(bs);
            q += (double)lane_sum(bq);
        }
        for (size_t k = i; k < n; k++) { s += (double)x[k]; q += (double)x[k] * (double)x[k]; }
        *sum = s;
        *sum_squares = q;
    } else {
        for (; i + 8 <= n; i += 8)
            largest = _mm256_max_epi32(largest, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + i)), magnitude));
    }
    int32_t lanes[8], best = 0;
    _mm256_storeu_si256((__m256i *)lanes, largest);
    for (int k = 0; k < 8; k++) best = lanes[k] > best ? lanes[k] : best;
    for (; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        int32_t key = (int32_t)(bits & 0x7FFFFFFF);
        best = key > best ? key : best;
    }
    float result;
    memcpy(&result, &best, 4);
    return result;
}

// Bit k of b moved to bit 2k.
static uint16_t spread(unsigned b) {
    uint16_t r = 0;
    for (int k = 0; k < 8; k++) r |= (uint16_t)(((b >> k) & 1) << (2 * k));
    return r;
}

// One step of the eight xoshiro128+ lanes (UniformLanes.next): eight uniforms b·2⁻²³.
AVX2 static inline __m256 next_uniforms(__m256i *s0, __m256i *s1, __m256i *s2, __m256i *s3) {
    __m256i result = _mm256_add_epi32(*s0, *s3), t = _mm256_slli_epi32(*s1, 9);
    *s2 = _mm256_xor_si256(*s2, *s0);
    *s3 = _mm256_xor_si256(*s3, *s1);
    *s1 = _mm256_xor_si256(*s1, *s2);
    *s0 = _mm256_xor_si256(*s0, *s3);
    *s2 = _mm256_xor_si256(*s2, t);
    *s3 = _mm256_or_si256(_mm256_slli_epi32(*s3, 11), _mm256_srli_epi32(*s3, 21));
    return _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_srli_epi32(result, 9), _mm256_set1_epi32(0x3F800000))),
                         _mm256_set1_ps(1));
}

// QSGD.levelWords (wide = false) for eight elements.
AVX2 static inline __m256i level_words(__m256 x, __m256 u, __m256 factor, __m256 s) {
    const __m256 big = _mm256_set1_ps(0x1p23f), one = _mm256_set1_ps(1);
    __m256 a = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7FFFFFFF))), factor);
    a = _mm256_blendv_ps(a, s, _mm256_cmp_ps(a, s, _CMP_GT_OQ));
    __m256 rounded = _mm256_sub_ps(_mm256_add_ps(a, big), big);
    __m256 lower = _mm256_blendv_ps(rounded, _mm256_sub_ps(rounded, one), _mm256_cmp_ps(rounded, a, _CMP_GT_OQ));
    __m256 level = _mm256_blendv_ps(lower, _mm256_add_ps(lower, one), _mm256_cmp_ps(u, _mm256_sub_ps(a, lower), _CMP_LT_OQ));
    level = _mm256_blendv_ps(level, s, _mm256_cmp_ps(level, s, _CMP_GT_OQ));
    __m256i word = _mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(level, big)), _mm256_set1_epi32(0x7FFFFF));
    __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_or_si256(word, _mm256_and_si256(negative, _mm256_set1_epi32((int)0x80000000u)));
}

AVX2 size_t qsgd_levels_avx2(const float *x, size_t count, unsigned *lanes, float factor, float levels, unsigned *words) {
    __m256i s0 = _mm256_loadu_si256((const __m256i *)lanes), s1 = _mm256_loadu_si256((const __m256i *)(lanes + 8));
    __m256i s2 = _mm256_loadu_si256((const __m256i *)(lanes + 16)), s3 = _mm256_loadu_si256((const __m256i *)(lanes + 24));
    const __m256 f = _mm256_set1_ps(factor), s = _mm256_set1_ps(levels);
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i nonzeros = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256 u = next_uniforms(&s0, &s1, &s2, &s3);
        __m256i w = level_words(_mm256_loadu_ps(x + j), u, f, s);
        _mm256_storeu_si256((__m256i *)(words + j), w);
        nonzeros = _mm256_sub_epi32(nonzeros, _mm256_cmpgt_epi32(_mm256_and_si256(w, magnitude), _mm256_setzero_si256()));
    }
    if (j < count) {
        float block[8] = {0};
        unsigned out[8];
        memcpy(block, x + j, (count - j) * sizeof(float));
        __m256 u = next_uniforms(&s0, &s1, &s2, &s3);
        __m256i w = level_words(_mm256_loadu_ps(block), u, f, s);
        _mm256_storeu_si256((__m256i *)out, w);
        memcpy(words + j, out, (count - j) * sizeof(unsigned));
        nonzeros = _mm256_sub_epi32(nonzeros, _mm256_cmpgt_epi32(_mm256_and_si256(w, magnitude), _mm256_setzero_si256()));
    }
    _mm256_storeu_si256((__m256i *)lanes, s0);
    _mm256_storeu_si256((__m256i *)(lanes + 8), s1);
    _mm256_storeu_si256((__m256i *)(lanes + 16), s2);
    _mm256_storeu_si256((__m256i *)(lanes + 24), s3);
    unsigned counts[8];
    _mm256_storeu_si256((__m256i *)counts, nonzeros);
    size_t total = 0;
    for (int k = 0; k < 8; k++) total += counts[k];
    return total;
}

AVX2 void terngrad_fields_avx2(const float *x, size_t groups, unsigned *lanes, float scaler, float inverse,
                               unsigned char *out) {
    uint16_t even[256];
    for (unsigned b = 0; b < 256; b++) even[b] = spread(b);
    __m256i s0 = _mm256_loadu_si256((const __m256i *)lanes), s1 = _mm256_loadu_si256((const __m256i *)(lanes + 8));
    __m256i s2 = _mm256_loadu_si256((const __m256i *)(lanes + 16)), s3 = _mm256_loadu_si256((const __m256i *)(lanes + 24));
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256 s = _mm256_set1_ps(scaler), inv = _mm256_set1_ps(inverse), zero = _mm256_setzero_ps();
    for (size_t g = 0; g < groups; g++) {
        __m256 u = next_uniforms(&s0, &s1, &s2, &s3);

        __m256 v = _mm256_loadu_ps(x + 8 * g);
        __m256 clipped = _mm256_min_ps(_mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), magnitude)), s);
        unsigned kept = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(u, _mm256_mul_ps(clipped, inv), _CMP_LT_OQ));
        unsigned negative = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ));
        uint16_t field = (uint16_t)(even[kept] | even[kept & negative] << 1);
        memcpy(out + 2 * g, &field, 2);  // little-endian
    }
    _mm256_storeu_si256((__m256i *)lanes, s0);
    _mm256_storeu_si256((__m256i *)(lanes + 8), s1);
    _mm256_storeu_si256((__m256i *)(lanes + 16), s2);
    _mm256_storeu_si256((__m256i *)(lanes + 24), s3);
}

AVX2 int onebit_encode_avx2(const float *x, size_t rows, size_t m, size_t period, float *lanes,
                           double *negative_sum, double *positive_sum, long long *negative_count, unsigned char *bits) {
    float *neg = lanes, *pos = lanes + period, *cnt = lanes + 2 * period;  // counts as floats: exact below 2²⁴
    const __m256 zero = _mm256_setzero_ps();
    const __m256i exponent = _mm256_set1_epi32(0x7F800000);
    __m256i nonFinite = _mm256_setzero_si256();
    for (size_t j = 0; j < m; j++) { negative_sum[j] = 0; positive_sum[j] = 0; negative_count[j] = 0; }
    for (size_t r0 = 0; r0 < rows; r0 += 64) {
        size_t blockRows = rows - r0 < 64 ? rows - r0 : 64;
        const float *b = x + r0 * m;
        size_t count = blockRows * m, e = 0;
        for (size_t p = 0; p < 3 * period; p++) lanes[p] = 0;
        // Whole periods, eight lanes at a time (period is a multiple of 8, and so is r0·m).
        for (; e + period <= count; e += period) {
            for (size_t p = 0; p < period; p += 8) {
                __m256 v = _mm256_loadu_ps(b + e + p);
                nonFinite = _mm256_or_si256(nonFinite, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exponent), exponent));
                _mm256_storeu_ps(neg + p, _mm256_add_ps(_mm256_loadu_ps(neg + p), _mm256_min_ps(zero, v)));
                _mm256_storeu_ps(pos + p, _mm256_add_ps(_mm256_loadu_ps(pos + p), _mm256_max_ps(v, zero)));
                __m256 negative = _mm256_cmp_ps(v, zero, _CMP_LT_OQ);
                _mm256_storeu_ps(cnt + p, _mm256_add_ps(_mm256_loadu_ps(cnt + p), _mm256_and_ps(negative, _mm256_set1_ps(1))));
                bits[(r0 * m + e + p) >> 3] = (unsigned char)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ));
            }
        }
        // The block's last partial period (only in the last block), element by element.
        for (size_t p = 0; e < count; e++, p++) {
            float v = b[e];
            uint32_t u;
            memcpy(&u, &v, 4);
            if ((u & 0x7F800000) == 0x7F800000) nonFinite = _mm256_set1_epi32(-1);
            neg[p] += 0 < v ? 0 : v;
            pos[p] += 0 >= v ? 0 : v;
            cnt[p] += v < 0 ? 1 : 0;
            size_t g = r0 * m + e;
            if (g % 8 == 0) bits[g >> 3] = 0;
            bits[g >> 3] |= (unsigned char)((v >= 0) << (g % 8));
        }
        for (size_t p = 0, j = 0; p < period; p++, j = j + 1 == m ? 0 : j + 1) {
            negative_sum[j] += (double)neg[p];
            positive_sum[j] += (double)pos[p];
            negative_count[j] += (long long)cnt[p];
        }
    }
    return _mm256_testz_si256(nonFinite, nonFinite);
}

#else

float terngrad_statistics_avx2(const float *x, size_t n, int moments, double *sum, double *sum_squares) { return 0; }
void terngrad_fields_avx2(const float *x, size_t groups, unsigned *lanes, float scaler, float inverse,
                          unsigned char *out) {}
int onebit_encode_avx2(const float *x, size_t rows, size_t m, size_t period, float *lanes,
                       double *negative_sum, double *positive_sum, long long *negative_count, unsigned char *bits) { return 0; }
size_t qsgd_levels_avx2(const float *x, size_t count, unsigned *lanes, float factor, float levels, unsigned *words) { return 0; }

#endif
