import Collectives
import LinearAlgebra

/// PowerSGD with one collective per training step (`alternate=true`, ALGORITHMS.md §12.3).
///
/// The standard step runs both half-steps of a power iteration, P = M·Q and Q = Mᵀ·P̂, each
/// followed by an all-reduce, plus one for the uncompressed tensors: three collectives in a
/// row, each paying the network's latency. Subspace iteration does not need both halves in the
/// same training step: the later PowerSGD code of the paper's authors (epfml/powersgd,
/// `BasicPowerSGD.aggregate`, 2022) and ACP-SGD (Zhang et al. 2023) alternate them across
/// steps, so each step computes and sends one factor. Per compressed matrix M_w = G_w + E_w
/// (n×m) of worker w, with c the number of compressed steps taken before this one:
///
/// - c even (Q-half): P̂ = orth(P̄'), the last reduced P (a shared random P on the first step);
///   Q_w = M_wᵀ·P̂; all-reduce; Q̄ = (1/W) Σ_w Q_w.
///   Output G ← P̂·Q̄ᵀ = P̂P̂ᵀ·M̄ (the mean projected on the left subspace);
///   error E_w ← M_w − P̂·Q_wᵀ (variant B, `local`) or M_w − P̂·Q̄ᵀ (variant A, `global`).
/// - c odd (P-half): Q̂ = orth(Q̄'), the Q̄ of the step before; P_w = M_w·Q̂; all-reduce;
///   P̄ = (1/W) Σ_w P_w.
///   Output G ← P̄·Q̂ᵀ = M̄·Q̂Q̂ᵀ (the mean projected on the right subspace);
///   error E_w ← M_w − P_w·Q̂ᵀ (variant B) or M_w − P̄·Q̂ᵀ (variant A).
///
/// Both outputs are orthogonal projections of the averaged input, so Σ_w E_w + W·G = Σ_w M_w
/// holds as in the standard step, and linearity (W workers ≡ one worker on the mean gradient)
/// is kept. The uncompressed tensors travel in the same buffer, in front of the factor: the
/// buffer is summed and their part divided by W. Payload per step: 4·(u + Σ r·m) bytes on
/// Q-halves, 4·(u + Σ r·n) on P-halves (u the uncompressed floats), against 4·(u + Σ r·(n+m))
/// in three collectives for the standard step.
///
/// What the alternation costs: P̂ (or Q̂) comes from the previous step's gradients, so each
/// step projects on a subspace one step old; the error memory carries what that misses into
/// the next step. Zero columns of the basis (a zero or low-rank input) are redrawn from the
/// shared generator before orthonormalization, as the standard step revives Q̄'s.
extension PowerSGD {
    mutating func alternatingStep(_ gradients: inout [Tensor], layout: MatrixLayout, over group: any Communicator) throws -> Double {
        let feedback = options.errorFeedback
        let orthonormalization = options.orthonormalization ?? .preferred(rank: options.rank)
        let w = workspace
        w.fitStep(to: layout, errorFeedback: feedback != .off)
        let qHalf = (step - options.startIteration) % 2 == 0
        if !hasWarmStart {
            // The first compressed step is a Q-half: it needs a shared P to start from.
            for (index, entry) in layout.compressedEntries {
                let part = UnsafeMutableBufferPointer(start: w.p.base + entry.pOffset, count: entry.rows * entry.rank)
                Philox(seed: options.seed, stream: Philox.stream(UInt64(step), UInt64(index))).fillNormal(part)
            }
            hasWarmStart = true
        }
        let basis = qHalf ? w.p : w.q
        let factorCount = qHalf ? layout.qCount : layout.pCount
        let u = layout.uncompressedCount
        var message = [Float](repeating: 0, count: u + factorCount)
        var norms = LowRankKernels.Norms()
        try message.withUnsafeMutableBufferPointer { buffer in
            let packed = buffer.baseAddress!, factors = packed + u
            TensorPlacement.pack(gradients, layout.uncompressedPlacements, into: packed)
            for (index, entry) in layout.compressedEntries {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                let block = basis.base + (qHalf ? entry.pOffset : entry.qOffset)
                let basisRows = qHalf ? n : m
                reviveZeroColumns(of: block, rows: basisRows, rank: r, tensor: index)
                try orthonormalization.apply(block, rows: basisRows, columns: r, epsilon: options.orthogonalizationEpsilon)
                gradients[index].withUnsafeBufferPointer { g in
                    // M = G + E, kept in E with error feedback; G itself without.
                    var mine = g.baseAddress!
                    if feedback != .off {
                        let error = UnsafeMutableBufferPointer(start: w.error.base + entry.errorOffset, count: n * m)
                        Vector.add(g, to: error)
                        mine = UnsafePointer(error.baseAddress!)
                    }
                    if qHalf {
                        TallSkinny.multiplyTransposed(mine, rows: n, columns: m, by: block, rank: r, into: factors + entry.qOffset)
                    } else {
                        TallSkinny.multiply(mine, rows: n, columns: m, by: block, rank: r, into: factors + entry.pOffset)
                    }
                }
            }
            // The worker's own factor, for variant B's residual, before the sum overwrites it.
            let local = feedback == .local ? Array(UnsafeBufferPointer(start: factors, count: factorCount)) : []
            try group.allReduce(buffer, operation: .sum)
            // The mean of everything: the uncompressed tensors' average and Q̄ (or P̄).
            Vector.scale(buffer, by: 1 / Float(group.size))
            TensorPlacement.unpack(packed, layout.uncompressedPlacements, into: &gradients)

            local.withUnsafeBufferPointer { local in
                for (index, entry) in layout.compressedEntries {
                    let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                    let qt = w.qt.base, localQt = w.pendingQt.base
                    gradients[index].withUnsafeMutableBufferPointer { g in
                        let output = g.baseAddress!
                        let error = feedback == .off ? nil : w.error.base + entry.errorOffset
                        let mine = UnsafePointer(error ?? output)
                        let part: LowRankKernels.Norms
                        if qHalf {
                            // G ← P̂·Q̄ᵀ; E ← M − P̂·Q_wᵀ (variant B) or M − P̂·Q̄ᵀ (variant A).
                            LowRankKernels.transpose(factors + entry.qOffset, rows: m, columns: r, into: qt)
                            if feedback == .local {
                                LowRankKernels.transpose(local.baseAddress! + entry.qOffset, rows: m, columns: r, into: localQt)
                            }
                            part = LowRankKernels.reconstruct(input: mine, rows: n, columns: m, pHat: w.p.base + entry.pOffset, rank: r,
                                                              meanQt: qt, localQt: feedback == .local ? localQt : nil,
                                                              output: output, error: error)
                        } else {
                            // G ← P̄·Q̂ᵀ; E ← M − P_w·Q̂ᵀ (variant B) or M − P̄·Q̂ᵀ (variant A).
                            LowRankKernels.transpose(w.q.base + entry.qOffset, rows: m, columns: r, into: qt)
                            part = LowRankKernels.reconstruct(input: mine, rows: n, columns: m, pHat: factors + entry.pOffset, rank: r,
                                                              meanQt: qt, localQt: nil,
                                                              localPHat: feedback == .local ? local.baseAddress! + entry.pOffset : nil,
                                                              output: output, error: error)
                        }
                        norms.input += part.input
                        norms.residual += part.residual
                    }
                }
            }
            // The reduced factor is the next step's basis (orthonormalized there).
            (qHalf ? w.q : w.p).base.update(from: factors, count: factorCount)
        }
        return norms.input > 0 ? (norms.residual / norms.input).squareRoot() : 0
    }
}
