// See include/vector_kernels.h (qsgd_elias_decode) and GradientCompression's QSGD wire format.
// Plain C for every CPU: the speed comes from the order of work, not from wide registers.
//
// Decoding a variable-length stream is a serial chain through the bit position: the next code's
// start is known only once this code's length is. Everything else is kept off that chain:
// - the two streams are read in lockstep, so two independent chains overlap in the CPU;
// - a nonzero is only parsed (a short one by one table load), and its level stored at its stream
//   position in a dense buffer (one byte per element for s ≤ 127): no float work and no bucket
//   bookkeeping per nonzero;
// - only when both streams have been read and checked, one vectorizable pass multiplies the
//   buffers by the buckets' units and adds them to the output. A corrupt message therefore
//   throws before the output is touched, and the caller needs no copy of it to restore.
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

// Both streams, in lockstep four nonzeros of each per step while both have that many left, then
// the rest of each. Returns 0 or the fault.
static inline __attribute__((always_inline)) int read_streams(struct stream *s0, struct stream *s1, uint64_t levels, int wide,
                                                               void *buffer0, void *buffer1, const uint32_t *table,
                                                               qsgd_elias_fault *fault) {
    int r;
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
static void add_words(const uint32_t *words, size_t count, float unit, float undo, float *o) {
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        uint64_t any = 0, part;
        for (int t = 0; t < 8; t++) { memcpy(&part, words + j + 2 * t, 8); any |= part; }
        if (any == 0) continue;
        for (int t = 0; t < 16; t++) o[j + t] += decoded(words[j + t] & 0x7FFFFFFFu, words[j + t] & 0x80000000u, unit, undo);
    }
    for (; j < count; j++) o[j] += decoded(words[j] & 0x7FFFFFFFu, words[j] & 0x80000000u, unit, undo);
}

static void add_bytes(const unsigned char *bytes, size_t count, float unit, float undo, float *o) {
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

// out[index of stream k's position q] += the decoded entry q, for every position of the stream.
static void accumulate(const void *buffer, int wide, uint64_t positions, int k, size_t bucket, const float *units,
                       float *out) {
    for (uint64_t q = 0; q < positions;) {
        uint64_t streamBucket = q / bucket, end = (streamBucket + 1) * bucket;
        if (end > positions) end = positions;
        uint64_t b = 2 * streamBucket + (uint64_t)k;
        float unit = units[2 * b], undo = units[2 * b + 1];
        float *o = out + b * bucket + (q - streamBucket * bucket);
        size_t count = (size_t)(end - q);
        if (wide) add_words((const uint32_t *)buffer + q, count, unit, undo, o);
        else add_bytes((const unsigned char *)buffer + q, count, unit, undo, o);
        q = end;
    }
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
                      void *scratch, float *out, qsgd_elias_fault *fault) {
    struct stream s0 = {stream0, bytes0, 0, nonzeros0, qsgd_elias_stream_elements(n, bucket, 0), -1, 0};
    struct stream s1 = {stream1, bytes1, 0, nonzeros1, qsgd_elias_stream_elements(n, bucket, 1), -1, 0};
    int wide = levels > 127, r;
    void *buffer0 = scratch;
    void *buffer1 = (unsigned char *)scratch + (s0.elements + SLACK) * (wide ? 4 : 1);
    uint32_t table[1 << TABLE_BITS];
    fill_table(table, levels);
    // Two copies of the loop, with the entry width a constant in each.
    r = wide ? read_streams(&s0, &s1, levels, 1, buffer0, buffer1, table, fault)
             : read_streams(&s0, &s1, levels, 0, buffer0, buffer1, table, fault);
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
    accumulate(buffer0, wide, s0.elements, 0, bucket, units, out);
    accumulate(buffer1, wide, s1.elements, 1, bucket, units, out);
    return 0;
}
