import LinearAlgebra

/// A convolution's per-example weight gradient is ∂W_j = dY_j·col_jᵀ (`[O, C·k·k]`), from example
/// j's output gradient `dY_j` `[O, H'·W']` and its im2col patches `col_j` `[C·k·k, H'·W']`; the
/// bias's is ∂b_j = dY_j·1. They are materialized, one small product per example, which costs the
/// flops of the batch's ∂W product; the norms and the clipped sum Σ_j c_j ∂W_j (one product
/// cᵀ·G) are B·P more.
///
/// Ghost norms (‖Σ_t dy_t x_tᵀ‖² = Σ_{t,t'} (dy_t·dy_t')(x_t·x_t'), 2·T²·(O + C·k·k) flops for
/// T = H'·W') would avoid the `[B, P]` buffer, but the clipped sum then needs a second
/// im2col and ∂W product over the batch, so they never cost fewer flops than materializing here:
/// they save memory, not time. The buffer is B·P floats (10 MB for ResNet-8 at batch 32).
extension Conv2d: PerExampleLayer {
    func recordsPerExample(_ on: Bool) {
        recordsOutputGradient = on
        if !on { recordedOutputGradient = nil }
    }

    func exampleGradients(examples: Int) throws -> LayerExampleGradients {
        guard let input = cachedInput, let outputGradient = recordedOutputGradient else {
            throw NeuralNetworkError.backwardWithoutForward(layer: name)
        }
        let g = geometry(input.shape)
        let batch = g.batch, plane = g.outPlane, columns = batch * plane, size = outChannels * patchSize
        // G[j] = ∂W_j, row-major [B, O·C·k·k]; every row is written by a β = 0 product.
        var perExample = Tensor.filled(shape: [batch, size]) { _, _ in }
        perExample.withMutablePointer { gp in
            outputGradient.withPointer { dy in
                input.withPointer { x in
                    forEachImageBlock(g) { b0, nb, blockColumns in
                        let patches: UnsafePointer<Float>, stride: Int
                        if isPointwise {
                            (patches, stride) = (x + b0 * g.plane, columns)
                        } else {
                            let col = workspace.buffer(count: patchSize * blockColumns)
                            Im2col.gather(x, g, firstImage: b0, images: nb, into: col, threads: threads)
                            (patches, stride) = (UnsafePointer(col), blockColumns)
                        }
                        for i in 0..<nb {
                            let j = b0 + i
                            sgemm(.none, .transposed, m: outChannels, n: patchSize, k: plane,
                                  a: dy + j * plane, lda: columns, b: patches + i * plane, ldb: stride,
                                  c: gp + j * size, ldc: patchSize)
                        }
                    }
                }
            }
        }
        var squared = [perExample.withPointer { gp in
            (0..<batch).map { j in Double(Vector.sumOfSquares(UnsafeBufferPointer(start: gp + j * size, count: size))) }
        }]
        // ∂b_j[o] = Σ_t dY[o, j, t], kept [B, O].
        var biasPerExample: Tensor?
        if bias != nil {
            var b = Tensor(shape: [batch, outChannels])
            b.withMutablePointer { bp in
                outputGradient.withPointer { dy in
                    for o in 0..<outChannels {
                        for j in 0..<batch {
                            bp[j * outChannels + o] = Vector.sum(UnsafeBufferPointer(start: dy + o * columns + j * plane, count: plane))
                        }
                    }
                }
            }
            squared.append(PerExampleGradients.rowSquaredNorms(b, columns: outChannels))
            biasPerExample = b
        }
        return LayerExampleGradients(squaredNorms: squared) { [self] scales in
            PerExampleGradients.addWeightedRows(perExample, columns: size, weights: scales[scales.startIndex], into: weight)
            if let bias, let biasPerExample {
                PerExampleGradients.addWeightedRows(biasPerExample, columns: outChannels, weights: scales[scales.startIndex + 1],
                                                    into: bias)
            }
        }
    }
}
