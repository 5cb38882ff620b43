// See include/vector_kernels.h (qsgd_elias_decode) and GradientCompression's QSGD wire format.
// The parse is plain C for every CPU: its speed comes from the order of work, not from wide
// registers. The final pass has AVX2 and AVX-512 copies.
//
// Decoding a variable-length stream is a serial chain through the bit position: the next code's
// start is known only once this code's length is. The chain is kept short, and everything else
// off it:
// - the two streams are read in lockstep, so two independent chains overlap in the CPU;
// - for s ≤ 127 one table load parses a run of up to four short nonzeros (two on average at
//   s = 64) and one 8-byte store writes their levels, with the window refilled by a load whose
//   address does not depend on the codes just read;
// - a nonzero is only parsed, and its level stored at its stream position in a dense buffer (one
//   byte per element for s ≤ 127): no float work and no bucket bookkeeping per nonzero;
// - only when both streams have been read and checked, one vectorized pass multiplies the
//   buffers by the buckets' units and adds them to the output, in the output's order. A corrupt
//   message therefore throws before the output is touched, and the caller needs no copy of it to
//   restore.
#include "vector_kernels.h"

#include <stdint.h>
#include <string.h>

// The roundings are the ones the header states: (unit · ζ) · undo, no fused multiply-add.
#pragma STDC FP_CONTRACT OFF

#define HIGH_BIT (1ull << 63)

struct stream {
    const unsigned char *bytes;
    size_t size;
    uint64_t bit;        // the next unread bit
    size_t left;         // nonzeros not yet read
    uint64_t elements;   // the stream's positions
    int64_t last;        // the position of the last nonzero read (−1 before the first)
    uint32_t word;       // that nonzero's level | sign << 31
};

// The bit at `position` (< 8·size).
static inline unsigned bit_at(const unsigned char *bytes, uint64_t position) {
    return (bytes[position >> 3] >> (position & 7)) & 1;
}

// One Elias gamma code read bit by bit: for codes longer than the 64-bit window and for codes at
// the end of the stream. Returns 0 or the fault.
static int read_gamma(const struct stream *s, uint64_t *position, uint64_t *value) {
    uint64_t p = *position, end = 8 * (uint64_t)s->size;
    int zeros = 0;
    for (;;) {
        if (p >= end) return QSGD_ELIAS_TRUNCATED;
        if (bit_at(s->bytes, p++)) break;
        if (++zeros > 63) return QSGD_ELIAS_CODE_TOO_LONG;
    }
    if (end - p < (uint64_t)zeros) return QSGD_ELIAS_TRUNCATED;
    uint64_t low = 0;
    for (int i = 0; i < zeros; i++) low |= (uint64_t)bit_at(s->bytes, p++) << i;
    *value = (1ull << zeros) | low;
    *position = p;
    return 0;
}

// The unread bits at s->bit, lowest first, and how many of them are valid (at most 63, so that
// consuming them all is a shift below 64; bits above `valid` are not looked at).
static inline __attribute__((always_inline)) void window(const struct stream *s, uint64_t *w, int *valid) {
    size_t byte = (size_t)(s->bit >> 3);
    int skip = (int)(s->bit & 7);
    uint64_t bits = 0;
    if (byte + 8 <= s->size) {
        memcpy(&bits, s->bytes + byte, 8);  // little-endian host (x86-64, arm64)
        *valid = 63 - skip;
    } else {
        size_t have = byte < s->size ? s->size - byte : 0;
        if (have) memcpy(&bits, s->bytes + byte, have);
        *valid = have ? 8 * (int)have - skip : 0;
    }
    *w = bits >> skip;
}

// Reads the next nonzero's γ(gap), sign and γ(level) at s->bit into s->bit, s->last and
// s->word: from one window when they fit in it, else bit by bit. Returns 0 or the fault (then
// `fault` says where). Out of line and without pointers to the caller's locals: it serves the
// codes the table does not hold, and inlined, or given the window by address, it took the table
// loop's registers, whose state then lived on the stack.
static __attribute__((noinline)) int read_nonzero(struct stream *s, uint64_t levels, int k, qsgd_elias_fault *fault) {
    uint64_t bits, gap, level;
    int valid;
    window(s, &bits, &valid);
    // The three fields at once when they fit in the window (z1 < 31 keeps every shift < 64; the
    // OR keeps count-trailing-zeros defined for an empty window).
    int z1 = __builtin_ctzll(bits | HIGH_BIT);
    int l1 = 2 * z1 + 1;
    uint64_t after = bits >> ((l1 + 1) & 63);
    int z2 = __builtin_ctzll(after | HIGH_BIT);
    int total = l1 + 2 + 2 * z2;
    unsigned negative;
    if (z1 < 31 && total <= valid) {
        gap = ((bits >> (z1 + 1)) & ((1ull << z1) - 1)) | (1ull << z1);
        negative = (unsigned)(bits >> l1) & 1;
        level = ((after >> (z2 + 1)) & ((1ull << z2) - 1)) | (1ull << z2);
        s->bit += (uint64_t)total;
    } else {
        uint64_t p = s->bit;
        int r = read_gamma(s, &p, &gap);
        if (r == 0 && p >= 8 * (uint64_t)s->size) r = QSGD_ELIAS_TRUNCATED;
        if (r == 0) { negative = bit_at(s->bytes, p++); r = read_gamma(s, &p, &level); }
        if (r != 0) { fault->stream = k; fault->position = s->last; fault->value = 0; return r; }
        s->bit = p;
    }
    if (level > levels) { fault->stream = k; fault->position = s->last; fault->value = level; return QSGD_ELIAS_LEVEL_ABOVE_S; }
    // The new position last + gap must be a position of the stream (unsigned: gap may be ~2⁶⁴).
    if (gap > s->elements - 1 - (uint64_t)s->last) {
        fault->stream = k; fault->position = s->last; fault->value = gap;
        return QSGD_ELIAS_GAP_BEYOND_TENSOR;
    }
    s->last += (int64_t)gap;
    s->word = (uint32_t)level | negative << 31;
    return 0;
}

// Stores `entry` (ζ | sign << 31, or for 1-byte entries ζ | sign << 7) at position `last`, `gap`
// after the previous nonzero, into the dense buffer, with zeros over the positions skipped. The
// buffer has 8 entries of slack past the stream's end, so a short gap is filled with one
// fixed-size store.
static inline __attribute__((always_inline)) void store_level(int64_t last, uint64_t gap, uint32_t entry, int wide, void *buffer) {
    static const uint32_t zeros[8] = {0};
    uint64_t first = (uint64_t)last - gap + 1;  // the first position skipped
    if (wide) {
        uint32_t *b = buffer;
        if (gap <= 8) memcpy(b + first, zeros, sizeof zeros); else memset(b + first, 0, (size_t)(gap - 1) * 4);
        b[last] = entry;
    } else {
        unsigned char *b = buffer;
        if (gap <= 8) memcpy(b + first, zeros, 8); else memset(b + first, 0, (size_t)(gap - 1));
        b[last] = (unsigned char)entry;
    }
}

// Short codes by table: entry x (the next 12 bits) describes the nonzero whose γ(gap), sign and
// γ(level) fit in x with a gap of at most 8, as its length (bits 0–6), gap (bits 8–11) and
// level byte ζ | sign << 7 (bits 16–23); otherwise, or when ζ > s, its length is NO_ENTRY and
// the nonzero is read by read_nonzero. With s = 64 on Gaussian gradients nearly every nonzero is
// 3–9 bits with a gap of 1–3.
#define TABLE_BITS 12
#define NO_ENTRY 127
#define TABLE_GAP 8

static void fill_table(uint32_t *table, uint64_t levels) {
    for (uint32_t x = 0; x < 1u << TABLE_BITS; x++) {
        table[x] = NO_ENTRY;
        if (x == 0) continue;
        int z1 = __builtin_ctz(x), l1 = 2 * z1 + 1;
        if (l1 + 2 > TABLE_BITS) continue;
        uint32_t after = x >> (l1 + 1);
        if (after == 0) continue;
        int z2 = __builtin_ctz(after), total = l1 + 2 + 2 * z2;
        if (total > TABLE_BITS) continue;
        uint32_t gap = ((x >> (z1 + 1)) & ((1u << z1) - 1)) | (1u << z1);
        uint32_t level = ((after >> (z2 + 1)) & ((1u << z2) - 1)) | (1u << z2);
        if (level > levels || gap > TABLE_GAP) continue;
        table[x] = (uint32_t)total | gap << 8 | (level | ((x >> l1) & 1) << 7) << 16;
    }
}

// Entries of slack past each stream's end in the dense buffers: a step of four table entries
// may run 4·8 positions past it before its one check, and a zero store covers 8 more.
#define SLACK 64

// Reads and stores `count` (≤ 4) nonzeros of stream s from one window load: four short codes fit
// its 56+ bits, so the load leaves the bit-position chain for three of them, a short code's
// fields are one table load, and the positions are checked against the stream's end once per
// step (they only grow). The stream's state is copied to locals so that it stays in registers.
// Returns 0 or the fault.
static inline __attribute__((always_inline)) int read_nonzeros(struct stream *s, int count, uint64_t levels, int k, int wide,
                                                                void *buffer, const uint32_t *table, qsgd_elias_fault *fault) {
    static const uint32_t zeros[TABLE_GAP] = {0};
    uint64_t w, bit = s->bit;
    int valid, start;
    int64_t last = s->last, before = last, elements = (int64_t)s->elements;
    window(s, &w, &valid);
    start = valid;
    for (int t = 0; t < count; t++) {
        uint32_t e = table[w & ((1u << TABLE_BITS) - 1)];
        int length = (int)(e & 127);
        if (__builtin_expect(length <= valid, 1)) {
            w >>= length;
            valid -= length;
            // Zeros over the positions skipped (gap ≤ 8), then the level.
            if (wide) memcpy((uint32_t *)buffer + last + 1, zeros, sizeof zeros);
            else memcpy((unsigned char *)buffer + last + 1, zeros, TABLE_GAP);
            last += (int64_t)(e >> 8 & 15);
            uint32_t byte = e >> 16;
            if (wide) ((uint32_t *)buffer)[last] = (byte & 0x7F) | (byte & 0x80) << 24;
            else ((unsigned char *)buffer)[last] = (unsigned char)byte;
        } else {
            if (last >= elements) break;  // the check below reports it
            s->bit = bit + (uint64_t)(start - valid);
            s->last = last;
            int r = read_nonzero(s, levels, k, fault);
            if (r) return r;
            store_level(s->last, (uint64_t)(s->last - last), wide ? s->word : (s->word & 0x7F) | (s->word >> 24 & 0x80), wide, buffer);
            last = s->last;
            bit = s->bit;
            window(s, &w, &valid);
            start = valid;
        }
    }
    if (last >= elements) {
        fault->stream = k; fault->position = before; fault->value = (uint64_t)(last - before);
        return QSGD_ELIAS_GAP_BEYOND_TENSOR;
    }
    s->bit = bit + (uint64_t)(start - valid);
    s->last = last;
    s->left -= (size_t)count;
    return 0;
}

// Several short codes by one table load, for 1-byte buffers: entry x (the next 12 bits) holds the
// longest run of up to four whole nonzeros that fit in x, each with the table's bounds (ζ ≤ s) and
// their gaps summing to at most 6, as
// - bits 0–6: the bits they take (NO_ENTRY when not even the first one fits);
// - bytes 1–6: the buffer bytes of the six positions after the last nonzero before them (the
//   level bytes ζ | sign << 7 where they land, zeros over the positions skipped);
// - byte 7: the positions they advance (bits 0–3) and their count (bits 4–6).
// One 8-byte store of entry >> 8 at that last position + 1 writes all six bytes. It also writes
// byte 7 and a zero past them; the next store starts at most six on and overwrites both, and the
// other writers (store_level, read_nonzeros, the zeros after the last nonzero) start no later.
// With s = 64 on Gaussian gradients (5.2 bits per nonzero) an entry holds two nonzeros on average.
#define RUN_GAP 6
#define RUN_MOST 4

static void fill_run_table(uint64_t *table, uint64_t levels) {
    for (uint32_t x = 0; x < 1u << TABLE_BITS; x++) {
        int used = 0, advance = 0, count = 0;
        uint64_t bytes = 0;
        while (count < RUN_MOST) {
            uint32_t rest = x >> used;
            int room = TABLE_BITS - used;
            if (rest == 0) break;
            int z1 = __builtin_ctz(rest), l1 = 2 * z1 + 1;
            if (l1 + 2 > room) break;
            uint32_t after = rest >> (l1 + 1);
            if (after == 0) break;
            int z2 = __builtin_ctz(after), total = l1 + 2 + 2 * z2;
            if (total > room) break;
            uint32_t gap = ((rest >> (z1 + 1)) & ((1u << z1) - 1)) | (1u << z1);
            uint32_t level = ((after >> (z2 + 1)) & ((1u << z2) - 1)) | (1u << z2);
            if (level > levels || advance + (int)gap > RUN_GAP) break;
            advance += (int)gap;
            bytes |= (uint64_t)(level | ((rest >> l1) & 1) << 7) << (8 * (advance - 1));
            used += total;
            count++;
        }
        table[x] = count == 0 ? NO_ENTRY : (uint64_t)used | bytes << 8 | (uint64_t)(advance | count << 4) << 56;
    }
}

// A stream being read by the run table, in registers: `bits` holds the stream's next `count` bits
// (lowest first; the bits above them, when not zero, are the stream's bits that follow), and
// `next` is the byte after them (the first unread bit plus count is a whole byte). A refill ORs
// the 8 bytes at `next` in above the `count` bits and takes whole bytes of them, so count
// becomes 56–63 (Giesen's branch-free refill): the load's address does not wait for the codes
// being read, only the shift that places it does.
struct runs_reader {
    uint64_t bits;
    int count;
    const unsigned char *next;
    int64_t last;
    size_t left;
};

static inline __attribute__((always_inline)) struct runs_reader runs_reader_at(const struct stream *s) {
    struct runs_reader r = {0, 0, s->bytes + (s->bit >> 3), s->last, s->left};
    memcpy(&r.bits, r.next, 8);  // little-endian host (x86-64, arm64)
    r.next += 7;
    r.count = 56 - (int)(s->bit & 7);
    r.bits = (r.bits & ((1ull << 56) - 1)) >> (s->bit & 7);
    return r;
}

static inline __attribute__((always_inline)) void runs_reader_keep(const struct runs_reader *r, struct stream *s) {
    s->bit = 8 * (uint64_t)(r->next - s->bytes) - (uint64_t)r->count;
    s->last = r->last;
    s->left = r->left;
}

// One step of the run table: a refill (it needs 8 bytes at r->next) and four loads (4 · 12 bits
// fit the 56+). Needs at least RUN_MOST · 4 nonzeros left. Returns 0 when the four were read,
// else 1 with r at the first code the table does not hold, for the caller to read one nonzero the
// other way. A step that ran past the stream's end of `elements` is not kept (r stays at its
// start, where the other way finds and reports the fault).
static inline __attribute__((always_inline)) int read_runs(struct runs_reader *r, int64_t elements, unsigned char *buffer,
                                                           const uint64_t *table) {
    struct runs_reader before = *r;
    uint64_t loaded;
    memcpy(&loaded, r->next, 8);
    r->bits |= loaded << r->count;
    r->next += (63 - r->count) >> 3;
    r->count |= 56;
    int t;
    for (t = 0; t < 4; t++) {
        uint64_t e = table[r->bits & ((1u << TABLE_BITS) - 1)];
        int length = (int)(e & 127);
        if (__builtin_expect(length > r->count, 0)) break;
        r->bits >>= length & 63;
        r->count -= length;
        uint64_t bytes = e >> 8;
        memcpy(buffer + r->last + 1, &bytes, 8);
        r->last += (int64_t)(e >> 56 & 15);
        r->left -= (size_t)(e >> 60);
    }
    if (r->last >= elements) { *r = before; return 1; }
    return t < 4;
}

// Both streams, in lockstep four nonzeros of each per step while both have that many left, then
// the rest of each. Returns 0 or the fault.
static inline __attribute__((always_inline)) int read_streams(struct stream *s0, struct stream *s1, uint64_t levels, int wide,
                                                               void *buffer0, void *buffer1, const uint32_t *table,
                                                               const uint64_t *runs, qsgd_elias_fault *fault) {
    int r;
    // The run table while both streams have 4 · RUN_MOST nonzeros and 8 + 8 bytes left (a start and
    // a refill), from where the other way read last.
    while (!wide && s0->left >= 4 * RUN_MOST && s1->left >= 4 * RUN_MOST && s0->size - (s0->bit >> 3) >= 16 &&
           s1->size - (s1->bit >> 3) >= 16) {
        struct runs_reader r0 = runs_reader_at(s0), r1 = runs_reader_at(s1);
        const unsigned char *end0 = s0->bytes + s0->size - 8, *end1 = s1->bytes + s1->size - 8;
        int slow0 = 0, slow1 = 0;
        while (!(slow0 | slow1) && r0.left >= 4 * RUN_MOST && r1.left >= 4 * RUN_MOST && r0.next <= end0 && r1.next <= end1) {
            slow0 = read_runs(&r0, (int64_t)s0->elements, buffer0, runs);
            slow1 = read_runs(&r1, (int64_t)s1->elements, buffer1, runs);
        }
        runs_reader_keep(&r0, s0);
        runs_reader_keep(&r1, s1);
        if (slow0 && (r = read_nonzeros(s0, 1, levels, 0, 0, buffer0, table, fault))) return r;
        if (slow1 && (r = read_nonzeros(s1, 1, levels, 1, 0, buffer1, table, fault))) return r;
        if (!(slow0 | slow1)) break;
    }
    while (s0->left >= 4 && s1->left >= 4) {
        if ((r = read_nonzeros(s0, 4, levels, 0, wide, buffer0, table, fault))) return r;
        if ((r = read_nonzeros(s1, 4, levels, 1, wide, buffer1, table, fault))) return r;
    }
    while (s0->left) if ((r = read_nonzeros(s0, 1, levels, 0, wide, buffer0, table, fault))) return r;
    while (s1->left) if ((r = read_nonzeros(s1, 1, levels, 1, wide, buffer1, table, fault))) return r;
    return 0;
}

// ±((unit · ζ) · undo) for level ζ and sign bit `sign` (0 or 1 << 31); −0 for ζ = 0, which
// added leaves every value as it is (+0 stays +0).
static inline __attribute__((always_inline)) float decoded(uint32_t level, uint32_t sign, float unit, float undo) {
    float magnitude = (unit * (float)(int32_t)level) * undo, value;
    uint32_t bits;
    memcpy(&bits, &magnitude, 4);
    bits = level == 0 ? 0x80000000u : bits ^ sign;
    memcpy(&value, &bits, 4);
    return value;
}

// o[j] += the decoded level words or bytes (ζ | sign in the top bit) of `count` elements; one
// loop per entry width, so that each vectorizes. Blocks of 16 zero entries are skipped (adding
// −0 changes nothing), so that a sparse stream does not pay a pass over the output.
static inline __attribute__((always_inline)) void add_words(const uint32_t *words, size_t count, float unit, float undo, float *o) {
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        uint64_t any = 0, part;
        for (int t = 0; t < 8; t++) { memcpy(&part, words + j + 2 * t, 8); any |= part; }
        if (any == 0) continue;
        for (int t = 0; t < 16; t++) o[j + t] += decoded(words[j + t] & 0x7FFFFFFFu, words[j + t] & 0x80000000u, unit, undo);
    }
    for (; j < count; j++) o[j] += decoded(words[j] & 0x7FFFFFFFu, words[j] & 0x80000000u, unit, undo);
}

static inline __attribute__((always_inline)) void add_bytes(const unsigned char *bytes, size_t count, float unit, float undo, float *o) {
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        uint64_t low, high;
        memcpy(&low, bytes + j, 8);
        memcpy(&high, bytes + j + 8, 8);
        if ((low | high) == 0) continue;
        for (int t = 0; t < 16; t++) o[j + t] += decoded(bytes[j + t] & 0x7Fu, (uint32_t)(bytes[j + t] & 0x80u) << 24, unit, undo);
    }
    for (; j < count; j++) o[j] += decoded(bytes[j] & 0x7Fu, (uint32_t)(bytes[j] & 0x80u) << 24, unit, undo);
}

#if defined(__x86_64__)
#include <immintrin.h>

// add_bytes eight lanes to a register: the same operations per element, in the same order (no
// fused multiply-add: see the pragma above), so the same sums. The baseline's SSE2 has no byte to
// 32-bit widening (vpmovzxbd), and the compiler left this loop scalar even for AVX2.
__attribute__((target("avx2,fma"))) static inline void add_bytes_avx2(const unsigned char *bytes, size_t count, float unit,
                                                                      float undo, float *o) {
    const __m256 u = _mm256_set1_ps(unit), d = _mm256_set1_ps(undo), minusZero = _mm256_set1_ps(-0.0f);
    const __m256i low = _mm256_set1_epi32(0x7F), top = _mm256_set1_epi32(0x80), zero = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(bytes + j));
        if (_mm_testz_si128(x, x)) continue;
        for (int h = 0; h < 2; h++) {
            __m256i e = _mm256_cvtepu8_epi32(h ? _mm_unpackhi_epi64(x, x) : x);
            __m256i level = _mm256_and_si256(e, low), sign = _mm256_slli_epi32(_mm256_and_si256(e, top), 24);
            __m256 magnitude = _mm256_mul_ps(_mm256_mul_ps(u, _mm256_cvtepi32_ps(level)), d);
            __m256 value = _mm256_xor_ps(magnitude, _mm256_castsi256_ps(sign));
            value = _mm256_blendv_ps(value, minusZero, _mm256_castsi256_ps(_mm256_cmpeq_epi32(level, zero)));
            _mm256_storeu_ps(o + j + 8 * h, _mm256_add_ps(_mm256_loadu_ps(o + j + 8 * h), value));
        }
    }
    for (; j < count; j++) o[j] += decoded(bytes[j] & 0x7Fu, (uint32_t)(bytes[j] & 0x80u) << 24, unit, undo);
}

// add_bytes sixteen lanes to a register, as add_bytes_avx2.
__attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma"))) static inline void add_bytes_avx512(
    const unsigned char *bytes, size_t count, float unit, float undo, float *o) {
    const __m512 u = _mm512_set1_ps(unit), d = _mm512_set1_ps(undo), minusZero = _mm512_set1_ps(-0.0f);
    const __m512i low = _mm512_set1_epi32(0x7F), top = _mm512_set1_epi32(0x80);
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(bytes + j));
        if (_mm_testz_si128(x, x)) continue;
        __m512i e = _mm512_cvtepu8_epi32(x);
        __m512i level = _mm512_and_si512(e, low), sign = _mm512_slli_epi32(_mm512_and_si512(e, top), 24);
        __m512 magnitude = _mm512_mul_ps(_mm512_mul_ps(u, _mm512_cvtepi32_ps(level)), d);
        __m512 value = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(magnitude), sign));
        value = _mm512_mask_blend_ps(_mm512_test_epi32_mask(level, level), minusZero, value);
        _mm512_storeu_ps(o + j, _mm512_add_ps(_mm512_loadu_ps(o + j), value));
    }
    for (; j < count; j++) o[j] += decoded(bytes[j] & 0x7Fu, (uint32_t)(bytes[j] & 0x80u) << 24, unit, undo);
}
#endif

// out[i] += the decoded entry of element i, bucket by bucket in the order of the output (bucket b
// is stream b % 2's positions from (b / 2)·bucket): one copy per path, whose add_words the compiler
// vectorizes at that path's width.
#define ACCUMULATE(name, target, add_bytes_path)                                                                   \
    target static void name(const void *buffer0, const void *buffer1, int wide, size_t n, size_t bucket,         \
                            const float *units, float *out) {                                                    \
        for (size_t b = 0, start = 0; start < n; b++, start += bucket) {                                         \
            size_t count = n - start < bucket ? n - start : bucket, q = (b >> 1) * bucket;                       \
            const void *buffer = b & 1 ? buffer1 : buffer0;                                                      \
            if (wide) add_words((const uint32_t *)buffer + q, count, units[2 * b], units[2 * b + 1], out + start); \
            else add_bytes_path((const unsigned char *)buffer + q, count, units[2 * b], units[2 * b + 1], out + start); \
        }                                                                                                        \
    }

ACCUMULATE(accumulate_portable, , add_bytes)
#if defined(__x86_64__)
ACCUMULATE(accumulate_avx2, __attribute__((target("avx2,fma"))), add_bytes_avx2)
ACCUMULATE(accumulate_avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma"))), add_bytes_avx512)
#endif

static void accumulate(int path, const void *buffer0, const void *buffer1, int wide, size_t n, size_t bucket,
                       const float *units, float *out) {
#if defined(__x86_64__)
    if (path == QSGD_ELIAS_AVX512) { accumulate_avx512(buffer0, buffer1, wide, n, bucket, units, out); return; }
    if (path == QSGD_ELIAS_AVX2) { accumulate_avx2(buffer0, buffer1, wide, n, bucket, units, out); return; }
#endif
    accumulate_portable(buffer0, buffer1, wide, n, bucket, units, out);
}

size_t qsgd_elias_stream_elements(size_t n, size_t bucket, int k) {
    // Stream k holds buckets k, k + 2, ...; the last bucket of the tensor may be short.
    size_t buckets = (n + bucket - 1) / bucket;
    if (buckets <= (size_t)k) return 0;
    size_t mine = (buckets - (size_t)k + 1) / 2;
    int lastIsMine = (buckets - 1) % 2 == (size_t)k;
    return mine * bucket - (lastIsMine ? buckets * bucket - n : 0);
}

int qsgd_elias_decode(const unsigned char *stream0, size_t bytes0, size_t nonzeros0,
                      const unsigned char *stream1, size_t bytes1, size_t nonzeros1,
                      size_t n, size_t bucket, const float *units, unsigned long long levels,
                      void *scratch, float *out, qsgd_elias_fault *fault, int path) {
    struct stream s0 = {stream0, bytes0, 0, nonzeros0, qsgd_elias_stream_elements(n, bucket, 0), -1, 0};
    struct stream s1 = {stream1, bytes1, 0, nonzeros1, qsgd_elias_stream_elements(n, bucket, 1), -1, 0};
    int wide = levels > 127, r;
    void *buffer0 = scratch;
    void *buffer1 = (unsigned char *)scratch + (s0.elements + SLACK) * (wide ? 4 : 1);
    uint32_t table[1 << TABLE_BITS];
    uint64_t runs[1 << TABLE_BITS];
    fill_table(table, levels);
    if (!wide) fill_run_table(runs, levels);
    // Two copies of the loop, with the entry width a constant in each.
    r = wide ? read_streams(&s0, &s1, levels, 1, buffer0, buffer1, table, runs, fault)
             : read_streams(&s0, &s1, levels, 0, buffer0, buffer1, table, runs, fault);
    if (r) return r;
    struct stream *streams[2] = {&s0, &s1};
    for (int k = 0; k < 2; k++) {
        const struct stream *s = streams[k];
        // Every bit after the last code must be zero padding of the last byte.
        uint64_t rest = 8 * (uint64_t)s->size - s->bit;
        fault->stream = k;
        fault->position = s->last;
        fault->value = rest;
        if (rest >= 8) return QSGD_ELIAS_TRAILING_BITS;
        for (uint64_t p = s->bit; p < 8 * (uint64_t)s->size; p++)
            if (bit_at(s->bytes, p)) return QSGD_ELIAS_NONZERO_PADDING;
    }
    // Zeros after each stream's last nonzero, then the sums.
    for (int k = 0; k < 2; k++) {
        const struct stream *s = streams[k];
        uint64_t from = (uint64_t)(s->last + 1), width = wide ? 4 : 1;
        memset((unsigned char *)(k ? buffer1 : buffer0) + from * width, 0, (size_t)((s->elements - from) * width));
    }
    accumulate(path, buffer0, buffer1, wide, n, bucket, units, out);
    return 0;
}
