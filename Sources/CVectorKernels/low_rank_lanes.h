// The bodies of PowerSGD's fused passes (`low_rank_project_*`, `low_rank_expand_*`), written once
// over a 16-lane vector V and included by low_rank.c once per instruction set. The includer
// defines: LANES_ATTR (the target attribute), LANES_NAME(name) (the name with the set's suffix),
// V and the inline operations v_zero, v_load, v_store, v_add, v_fmadd (a·b + c, one rounding),
// v_fnmadd (c − a·b, one rounding), v_set1, v_reduce (lanes as reduce16), v_prefetch, v_stream (a
// cache-bypassing store to a 64-byte aligned address), v_fence (orders the streamed stores). Every set
// computes each lane with the same operations in the same order, so all give the same bits.

// `ROWS` rows from row i of the first pass (see the header for the order of operations), which
// share each load of qt and cqt. `mode` 0: M = g; 1: e += g, M = e; 2: e += g − cp·cqtᵀ, M = e.
// `ROWS`, `R` and `mode` are literals at every call, so the accumulators stay in registers.
// Returns the rows' Σ (double)‖M_row‖².
LANES_ATTR __attribute__((always_inline)) static inline double
LANES_NAME(project_rows)(const float *g, float *e, const float *cp, const float *cqt, size_t i, size_t n, size_t m,
                         const float *qt, const size_t R, float *p, const int mode, const size_t ROWS) {
    // The next group's inputs into L2 while this one is summed: with two or three streams the
    // hardware prefetcher alone leaves the FMAs waiting on memory.
    const size_t ahead = i + 2 * ROWS <= n ? ROWS * m : 0;
    V c[2][8], acc[2][8], squares[2];
    for (size_t t = 0; t < ROWS; t++) {
        squares[t] = v_zero();
        for (size_t k = 0; k < R; k++) {
            acc[t][k] = v_zero();
            c[t][k] = mode == 2 ? v_set1(cp[(i + t) * R + k]) : v_zero();
        }
    }
    size_t j = 0;
    for (; j + 16 <= m; j += 16) {
        V v[2];
        for (size_t t = 0; t < ROWS; t++) {
            const size_t at = (i + t) * m + j;
            v_prefetch(g + at + ahead);
            v[t] = v_load(g + at);
            if (mode > 0) {
                v_prefetch(e + at + ahead);
                v[t] = v_add(v[t], v_load(e + at));
            }
        }
        if (mode == 2)
            for (size_t k = 0; k < R; k++) {
                V y = v_load(cqt + k * m + j);
                for (size_t t = 0; t < ROWS; t++) v[t] = v_fnmadd(c[t][k], y, v[t]);
            }
        for (size_t t = 0; t < ROWS; t++) {
            if (mode > 0) v_store(e + (i + t) * m + j, v[t]);
            squares[t] = v_fmadd(v[t], v[t], squares[t]);
        }
        for (size_t k = 0; k < R; k++) {
            V y = v_load(qt + k * m + j);
            for (size_t t = 0; t < ROWS; t++) acc[t][k] = v_fmadd(v[t], y, acc[t][k]);
        }
    }
    double total = 0;
    for (size_t t = 0; t < ROWS; t++) {
        const float *gi = g + (i + t) * m;
        float *ei = mode > 0 ? e + (i + t) * m : 0;
        float tail[8] = {0}, squaresTail = 0;
        for (size_t l = j; l < m; l++) {
            float v = gi[l];
            if (mode > 0) {
                v = v + ei[l];
                if (mode == 2) for (size_t k = 0; k < R; k++) v = fmaf(-cp[(i + t) * R + k], cqt[k * m + l], v);
                ei[l] = v;
            }
            squaresTail = fmaf(v, v, squaresTail);
            for (size_t k = 0; k < R; k++) tail[k] = fmaf(v, qt[k * m + l], tail[k]);
        }
        for (size_t k = 0; k < R; k++) p[(i + t) * R + k] = 0.0f + (v_reduce(acc[t][k]) + tail[k]);
        total += (double)(v_reduce(squares[t]) + squaresTail);
    }
    return total;
}

// Two rows per pass while their accumulators and coefficients fit the registers (r ≤ 4).
LANES_ATTR __attribute__((always_inline)) static inline double
LANES_NAME(project_all)(const float *g, float *e, const float *cp, const float *cqt, size_t n, size_t m,
                        const float *qt, const size_t R, float *p, const int mode) {
    double total = 0;
    size_t i = 0;
    if (R <= 4)
        for (; i + 2 <= n; i += 2) total += LANES_NAME(project_rows)(g, e, cp, cqt, i, n, m, qt, R, p, mode, 2);
    for (; i < n; i++) total += LANES_NAME(project_rows)(g, e, cp, cqt, i, n, m, qt, R, p, mode, 1);
    return total;
}

LANES_ATTR double LANES_NAME(low_rank_project)(const float *g, float *e, const float *cp, const float *cqt,
                                               size_t n, size_t m, const float *qt, size_t r, float *p) {
    const int mode = e == 0 ? 0 : cp == 0 ? 1 : 2;
#define CASE(R, MODE) if (r == R && mode == MODE) return LANES_NAME(project_all)(g, e, cp, cqt, n, m, qt, R, p, MODE);
#define RANKS(MODE) CASE(1, MODE) CASE(2, MODE) CASE(3, MODE) CASE(4, MODE) CASE(5, MODE) CASE(6, MODE) CASE(7, MODE) CASE(8, MODE)
    RANKS(0) RANKS(1) RANKS(2)
#undef RANKS
#undef CASE
    return -1;  // r outside 1…8: the caller's contract excludes it
}

// `ROWS` rows from row i of the output pass, columns [j0, j1), sharing each load of qt. With
// `STREAM`, the 16-column stores bypass the caches (out + (i + t)·m + j0 must be 64-byte aligned).
LANES_ATTR __attribute__((always_inline)) static inline void
LANES_NAME(expand_rows)(const float *pHat, const size_t R, const float *qt, size_t i, size_t m, size_t j0, size_t j1,
                        float *out, const size_t ROWS, const int STREAM) {
    V c[4][8];
    for (size_t t = 0; t < ROWS; t++) for (size_t k = 0; k < R; k++) c[t][k] = v_set1(pHat[(i + t) * R + k]);
    size_t j = j0;
    for (; j + 16 <= j1; j += 16) {
        V s[4];
        for (size_t t = 0; t < ROWS; t++) s[t] = v_zero();
        for (size_t k = 0; k < R; k++) {
            V y = v_load(qt + k * m + j);
            for (size_t t = 0; t < ROWS; t++) s[t] = v_fmadd(c[t][k], y, s[t]);
        }
        for (size_t t = 0; t < ROWS; t++) {
            if (STREAM) v_stream(out + (i + t) * m + j, s[t]); else v_store(out + (i + t) * m + j, s[t]);
        }
    }
    for (size_t t = 0; t < ROWS; t++)
        for (size_t l = j; l < j1; l++) {
            float s = 0;
            for (size_t k = 0; k < R; k++) s = fmaf(pHat[(i + t) * R + k], qt[k * m + l], s);
            out[(i + t) * m + l] = s;
        }
}

// Four rows per pass at r ≤ 4, two at r ≤ 8: each load of qt serves them all. Every element is
// its own FMA chain, so how the columns are split (an unaligned head and tail around the
// streamed middle) does not change a bit.
LANES_ATTR __attribute__((always_inline)) static inline void
LANES_NAME(expand_all)(const float *pHat, const size_t R, const float *qt, size_t n, size_t m, float *out, int stream) {
    // Streaming needs every row's middle 64-byte aligned: m a nonzero multiple of 16 (so the
    // head of at most 15 columns fits in a row) and 4-byte aligned floats.
    size_t head = 0;
    if (stream && m >= 16 && m % 16 == 0 && ((size_t)out & 3) == 0) head = ((64 - ((size_t)out & 63)) & 63) / 4;
    else stream = 0;
    size_t i = 0;
#define PASS(ROWS)                                                                                   \
    do {                                                                                             \
        if (stream) {                                                                                \
            LANES_NAME(expand_rows)(pHat, R, qt, i, m, 0, head, out, ROWS, 0);                       \
            LANES_NAME(expand_rows)(pHat, R, qt, i, m, head, head + (m - head) / 16 * 16, out, ROWS, 1); \
            LANES_NAME(expand_rows)(pHat, R, qt, i, m, head + (m - head) / 16 * 16, m, out, ROWS, 0); \
        } else {                                                                                     \
            LANES_NAME(expand_rows)(pHat, R, qt, i, m, 0, m, out, ROWS, 0);                          \
        }                                                                                            \
    } while (0)
    if (R <= 4)
        for (; i + 4 <= n; i += 4) PASS(4);
    for (; i + 2 <= n; i += 2) PASS(2);
    for (; i < n; i++) PASS(1);
#undef PASS
    if (stream) v_fence();
}

LANES_ATTR void LANES_NAME(low_rank_expand)(const float *pHat, size_t r, const float *qt, size_t n, size_t m, float *out,
                                            int stream) {
#define CASE(R) if (r == R) { LANES_NAME(expand_all)(pHat, R, qt, n, m, out, stream); return; }
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
}
