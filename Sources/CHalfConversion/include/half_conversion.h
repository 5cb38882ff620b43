// fp32 <-> fp16 conversion over buffers with the x86 F16C instructions (VCVTPS2PH/VCVTPH2PS).
//
// Swift cannot enable a target feature for one function, and the default x86-64 target has no
// F16C, so Swift code converts with integer/fp32 arithmetic (~1.3 ns per element here). These
// kernels are compiled for F16C+AVX only (`__attribute__((target))`) and must only be called
// when `half_conversion_available()` returns 1 (a CPUID check, done once by the caller).
// Rounding is IEEE round-to-nearest-even (immediate 0, MXCSR not consulted), so finite results
// are bit-identical to GradientCompression's portable path; NaN inputs may keep a different
// payload (the callers reject NaN before or after).
#ifndef HALF_CONVERSION_H
#define HALF_CONVERSION_H

#include <stddef.h>
#include <stdint.h>

/// 1 if the CPU and OS support F16C and AVX (CPUID.1:ECX bits 29, 28, 27 and XCR0's SSE/AVX
/// state), else 0 (always 0 off x86-64).
int half_conversion_available(void);

/// target[i] = fp16(source[i]), RNE. Returns 1 if every result is finite, 0 if any is Inf/NaN.
int half_conversion_to_float16(const float *source, uint16_t *target, size_t count);

/// target[i] = fp32(fp16(source[i])), RNE (the value the fp16 pattern holds). Returns 1 if every
/// result is finite.
int half_conversion_round_through_float16(const float *source, float *target, size_t count);

/// target[i] = fp32(source[i]) (exact).
void half_conversion_from_float16(const uint16_t *source, float *target, size_t count);

/// target[i] += weight * fp32(source[i]).
void half_conversion_add_float16(const uint16_t *source, float weight, float *target, size_t count);

#endif
