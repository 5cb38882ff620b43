import Collectives
import LinearAlgebra

extension PowerSGD {
    /// The PowerSGD+ refresh step (run by `PowerSGDPlus` in place of a power step) (ALGORITHMS.md §2, spec proposal — **our design**, the paper's
    /// algorithm body was not available): the subspace PowerSGD tracks by one power step per
    /// training step can lag the optimal one (the paper's counterexample); every τ steps we
    /// reset it to the exact optimum of the averaged gradient.
    ///
    /// 1. M_w = G_w + E_w for compressed tensors (stored in E), packed with the uncompressed ones;
    /// 2. one all-reduce (mean) of the whole buffer: M̄ on every worker, bit-identical;
    /// 3. per matrix, the thin SVD M̄ = U S Vᵀ (deterministic, so identical everywhere);
    /// 4. G ← U_r S_r V_rᵀ (the optimal rank-r approximation of the average, Eckart–Young);
    /// 5. E_w ← M_w − U_r U_rᵀ M_w (variant B) or M_w − U_r S_r V_rᵀ (variant A): as in a
    ///    power step, with P̂ = U_r, so Σ_w E_w = W(M̄ − U_r S_r V_rᵀ) and mass is conserved;
    /// 6. Q ← V_r, the warm start of the next power step.
    /// Why the full gradient and not Σ_w M_wᵀM_w (a third-party FSDP hook): the Gram sum's
    /// eigenvectors are the right singular vectors of the row-stacked local matrices, not of
    /// the average (§2, DERIVED). Cost: 4·d bytes of payload and one thin SVD per matrix.
    mutating func refreshStep(_ gradients: inout [Tensor], layout: MatrixLayout, over group: any Communicator) throws -> Double {
        settlePendingResidual()
        let feedback = options.errorFeedback
        var buffer = [Float](repeating: 0, count: layout.totalCount)
        let uncompressedPlacements = layout.uncompressedPlacements.map {
            TensorPlacement(tensor: $0.tensor, offset: layout.compressedCount + $0.offset)
        }
        let (qb, eb) = (workspace.q.pointer, workspace.error.pointer)
        var norms = LowRankKernels.Norms()
        try buffer.withUnsafeMutableBufferPointer { b in
            // 1. M_w into the packed buffer (E ← G + E first when feedback is on).
            TensorPlacement.pack(gradients, uncompressedPlacements, into: b.baseAddress!)
            for (index, entry) in layout.entries.enumerated() where entry.isCompressed && entry.count > 0 {
                gradients[index].withUnsafeBufferPointer { g in
                    do {
                        let target = b.baseAddress! + entry.errorOffset
                        if feedback == .off {
                            target.update(from: g.baseAddress!, count: entry.count)
                        } else {
                            let e = UnsafeMutableBufferPointer(rebasing: eb[entry.errorOffset ..< entry.errorOffset + entry.count])
                            Vector.add(g, to: e)
                            target.update(from: e.baseAddress!, count: entry.count)
                        }
                    }
                }
            }
            // 2. The average, identical on every worker.
            try group.allReduce(b, operation: .mean)
            TensorPlacement.unpack(b.baseAddress!, uncompressedPlacements, into: &gradients)
            for (index, entry) in layout.entries.enumerated() where entry.isCompressed && entry.count > 0 {
                let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                // 3. Exact SVD of the average.
                let mean = try Tensor(shape: [n, m], scalars: Array(b[entry.errorOffset ..< entry.errorOffset + entry.count]))
                let svd = try SingularValueDecomposition(mean)
                let k = svd.singularValues.count
                var uR = [Float](repeating: 0, count: n * r)          // P̂ = U_r (n×r)
                var svT = [Float](repeating: 0, count: r * m)         // (S_r V_rᵀ) = the "Q̄ᵀ" of this step
                for i in 0..<n { for j in 0..<r { uR[i * r + j] = svd.u.scalars[i * k + j] } }
                for j in 0..<r { for c in 0..<m { svT[j * m + c] = svd.singularValues[j] * svd.vt.scalars[j * m + c] } }
                // 6. Q ← V_r.
                for c in 0..<m { for j in 0..<r { qb[entry.qOffset + c * r + j] = svd.vt.scalars[j * m + c] } }
                // 4.–5. Output and new error in one pass; variant B needs U_rᵀ M_w.
                var localQt: [Float] = []
                if feedback == .local {
                    var local = [Float](repeating: 0, count: m * r)
                    uR.withUnsafeBufferPointer { u in local.withUnsafeMutableBufferPointer { l in
                        TallSkinny.multiplyTransposed(eb.baseAddress! + entry.errorOffset, rows: n, columns: m,
                                                      by: u.baseAddress!, rank: r, into: l.baseAddress!)
                    } }
                    localQt = [Float](repeating: 0, count: r * m)
                    local.withUnsafeBufferPointer { l in localQt.withUnsafeMutableBufferPointer { t in
                        LowRankKernels.transpose(l.baseAddress!, rows: m, columns: r, into: t.baseAddress!)
                    } }
                }
                gradients[index].withUnsafeMutableBufferPointer { g in
                    let e = feedback == .off ? nil : eb.baseAddress! + entry.errorOffset
                    uR.withUnsafeBufferPointer { u in svT.withUnsafeBufferPointer { s in localQt.withUnsafeBufferPointer { l in
                        let result = LowRankKernels.reconstruct(
                            input: UnsafePointer(e ?? g.baseAddress!), rows: n, columns: m, pHat: u.baseAddress!, rank: r,
                            meanQt: s.baseAddress!, localQt: feedback == .local ? l.baseAddress! : nil,
                            output: g.baseAddress!, error: e)
                        norms.input += result.input
                        norms.residual += result.residual
                    } } }
                }
            }
        }
        hasWarmStart = true
        return norms.input > 0 ? (norms.residual / norms.input).squareRoot() : 0
    }
}
