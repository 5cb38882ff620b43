// 2-D convolutions by oneDNN (the library PyTorch's CPU convolutions come from) on the project's
// channel-major [C, B, H, W] tensors with [O, C, k, k] weights.
//
// oneDNN has fast (JIT) kernels only for its own blocked layouts (nChw16c on AVX-512, nChw8c on
// AVX2); on our strided layout it falls back to a reference loop ~100× slower. So every call
// reorders its operands into the layouts the primitive chose, runs it, and reorders the result
// back: one extra pass over the activations per operand, against the convolution's O·k²
// operations per element. The blocked buffers live in a workspace shared by the convolutions
// of one model (they run one at a time), not per layer.
//
// Thread-safety: a workspace and the convolutions that use it belong to one thread at a time
// (one model, one worker); different workspaces may run concurrently.
#ifndef ONEDNN_CONVOLUTION_H
#define ONEDNN_CONVOLUTION_H

#include <stddef.h>

typedef struct onednn_workspace onednn_workspace;
typedef struct onednn_convolution onednn_convolution;

onednn_workspace *onednn_workspace_create(void);
void onednn_workspace_destroy(onednn_workspace *workspace);

/// The primitives for one geometry: input [in_channels, batch, height, width], padding and stride
/// equal in both directions, no bias (the caller adds it), run on `threads` OpenMP threads (oneDNN
/// partitions the work when it creates a primitive, so the count is part of the geometry).
/// Returns NULL and writes a message into `message` (always terminated) if oneDNN cannot
/// create them.
onednn_convolution *onednn_convolution_create(int batch, int in_channels, int height, int width,
                                              int out_channels, int kernel, int stride, int padding,
                                              int threads, char *message, size_t message_capacity);
void onednn_convolution_destroy(onednn_convolution *convolution);
/// The kernels oneDNN chose, e.g. "jit:avx512_core" (forward; backward data; backward weights).
const char *onednn_convolution_implementation(const onednn_convolution *convolution);

/// output[O, B, H', W'] = convolution of input with weight.
/// Returns 0, or a oneDNN status (see `onednn_status_name`).
int onednn_convolution_forward(onednn_convolution *convolution, onednn_workspace *workspace,
                               const float *input, const float *weight, float *output);

/// weight_gradient += ∂W (if not NULL) and input_gradient = ∂X (if not NULL) from the output
/// gradient. Returns 0 or a oneDNN status.
int onednn_convolution_backward(onednn_convolution *convolution, onednn_workspace *workspace,
                                const float *input, const float *weight, const float *output_gradient,
                                float *weight_gradient, float *input_gradient);

const char *onednn_status_name(int status);

#endif
