// The body of QSGD's vector Elias encoder (`qsgd_elias_append_avx2`, `qsgd_elias_append_avx512`),
// written once over eight 32-bit lanes and included by elias.c once per instruction set. The
// includer defines ELIAS_ATTR (the target attribute), ELIAS_NAME (the function's name) and
// FLOOR_LOG2 (⌊log₂ x⌋ per lane for 1 ≤ x < 2³¹). Both sets write the same bits.

ELIAS_ATTR size_t ELIAS_NAME(const unsigned *words, size_t count, long long start, qsgd_elias_stream *stream,
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
        __m256i zg = FLOOR_LOG2(gap), zl = FLOOR_LOG2(safeLevel);
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

