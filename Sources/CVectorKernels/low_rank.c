// See include/vector_kernels.h. PowerSGD's first and last passes over each gradient matrix
// (GradientCompression's `LowRankKernels`), in 16-lane AVX-512 and AVX2 versions of one body
// (low_rank_lanes.h) with the same lanes, FMAs and reduction, so both give the same bits.
#include "vector_kernels.h"

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE_AVX2 AVX2 __attribute__((always_inline)) static inline

// lanes 0..7 (a) and 8..15 (b) of one sum, reduced as tall_skinny.c's reduce16 does.
INLINE_AVX2 float low_rank_reduce16(__m256 a, __m256 b) {
    __m256 s8 = _mm256_add_ps(a, b);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

// 16 lanes as two ymm registers (lanes 0–7, 8–15).
typedef struct { __m256 lo, hi; } lanes_avx2;
INLINE_AVX2 lanes_avx2 avx2_zero(void) { return (lanes_avx2){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
INLINE_AVX2 lanes_avx2 avx2_load(const float *p) { return (lanes_avx2){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
INLINE_AVX2 void avx2_store(float *p, lanes_avx2 v) { _mm256_storeu_ps(p, v.lo); _mm256_storeu_ps(p + 8, v.hi); }
INLINE_AVX2 lanes_avx2 avx2_add(lanes_avx2 a, lanes_avx2 b) { return (lanes_avx2){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
INLINE_AVX2 lanes_avx2 avx2_fmadd(lanes_avx2 a, lanes_avx2 b, lanes_avx2 c) {
    return (lanes_avx2){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
INLINE_AVX2 lanes_avx2 avx2_fnmadd(lanes_avx2 a, lanes_avx2 b, lanes_avx2 c) {
    return (lanes_avx2){_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
}
INLINE_AVX2 lanes_avx2 avx2_set1(float x) { __m256 s = _mm256_set1_ps(x); return (lanes_avx2){s, s}; }
INLINE_AVX2 float avx2_reduce(lanes_avx2 v) { return low_rank_reduce16(v.lo, v.hi); }
INLINE_AVX2 void avx2_prefetch(const float *p) { _mm_prefetch((const char *)p, _MM_HINT_T1); }
INLINE_AVX2 void avx2_stream(float *p, lanes_avx2 v) { _mm256_stream_ps(p, v.lo); _mm256_stream_ps(p + 8, v.hi); }
INLINE_AVX2 void avx2_fence(void) { _mm_sfence(); }

#define LANES_ATTR AVX2
#define LANES_NAME(name) name##_avx2
#define V lanes_avx2
#define v_zero avx2_zero
#define v_load avx2_load
#define v_store avx2_store
#define v_add avx2_add
#define v_fmadd avx2_fmadd
#define v_fnmadd avx2_fnmadd
#define v_set1 avx2_set1
#define v_reduce avx2_reduce
#define v_prefetch avx2_prefetch
#define v_stream avx2_stream
#define v_fence avx2_fence
#include "low_rank_lanes.h"
#undef LANES_ATTR
#undef LANES_NAME
#undef V
#undef v_zero
#undef v_load
#undef v_store
#undef v_add
#undef v_fmadd
#undef v_fnmadd
#undef v_set1
#undef v_reduce
#undef v_prefetch
#undef v_stream
#undef v_fence

#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define INLINE_AVX512 AVX512 __attribute__((always_inline)) static inline

INLINE_AVX512 __m512 avx512_zero(void) { return _mm512_setzero_ps(); }
INLINE_AVX512 __m512 avx512_load(const float *p) { return _mm512_loadu_ps(p); }
INLINE_AVX512 void avx512_store(float *p, __m512 v) { _mm512_storeu_ps(p, v); }
INLINE_AVX512 __m512 avx512_add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
INLINE_AVX512 __m512 avx512_fmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
INLINE_AVX512 __m512 avx512_fnmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
INLINE_AVX512 __m512 avx512_set1(float x) { return _mm512_set1_ps(x); }
INLINE_AVX512 float avx512_reduce(__m512 v) {
    __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return low_rank_reduce16(_mm512_castps512_ps256(v), high);
}
INLINE_AVX512 void avx512_prefetch(const float *p) { _mm_prefetch((const char *)p, _MM_HINT_T1); }
INLINE_AVX512 void avx512_stream(float *p, __m512 v) { _mm512_stream_ps(p, v); }
INLINE_AVX512 void avx512_fence(void) { _mm_sfence(); }

#define LANES_ATTR AVX512
#define LANES_NAME(name) name##_avx512
#define V __m512
#define v_zero avx512_zero
#define v_load avx512_load
#define v_store avx512_store
#define v_add avx512_add
#define v_fmadd avx512_fmadd
#define v_fnmadd avx512_fnmadd
#define v_set1 avx512_set1
#define v_reduce avx512_reduce
#define v_prefetch avx512_prefetch
#define v_stream avx512_stream
#define v_fence avx512_fence
#include "low_rank_lanes.h"

#else

double low_rank_project_avx2(const float *g, float *e, const float *cp, const float *cqt, size_t n, size_t m,
                             const float *qt, size_t r, float *p) { return -1; }
double low_rank_project_avx512(const float *g, float *e, const float *cp, const float *cqt, size_t n, size_t m,
                               const float *qt, size_t r, float *p) { return -1; }
void low_rank_expand_avx2(const float *pHat, size_t r, const float *qt, size_t n, size_t m, float *out, int stream) {}
void low_rank_expand_avx512(const float *pHat, size_t r, const float *qt, size_t n, size_t m, float *out, int stream) {}

#endif
