import LinearAlgebra

extension PowerSGD {
    /// Switches to per-tensor requested ranks (L-GreCo's plan, ALGORITHMS.md §7.1) and re-lays
    /// out the P and Q buffers.
    ///
    /// - A tensor whose effective rank is unchanged keeps its warm-start Q.
    /// - A tensor whose rank changed gets a fresh Q from the shared generator keyed by
    ///   (seed, step, tensor) — the key `drawQ` uses — so every worker draws the same Q without
    ///   communicating (the reference code's unseeded `torch.randn` here is a bug, §7.4).
    /// - Error memories are `n×m` whatever the rank, so every tensor keeps its own: no mass is
    ///   lost at a re-plan.
    ///
    /// The set of compressed tensors must not change (L-GreCo only offers ranks that pass the
    /// compression test, see `LGreCo`); `ranks` has one entry per tensor.
    mutating func adopt(ranks: [Int]) {
        requestedRanks = ranks
        guard let old = layout else { return }
        settlePendingResidual()
        let new = layout(for: old.shapes)
        precondition(zip(old.entries, new.entries).allSatisfy { $0.isCompressed == $1.isCompressed },
                     "a rank plan must keep the set of compressed tensors")
        var newQ = [Float](repeating: 0, count: new.qCount)
        let redraw = options.warmStart && hasWarmStart
        let seed = options.seed, step = UInt64(self.step)
        let source = workspace.q.pointer
        newQ.withUnsafeMutableBufferPointer { target in
            do {
                for (index, (before, after)) in zip(old.entries, new.entries).enumerated() where after.isCompressed {
                    let block = UnsafeMutableBufferPointer(rebasing: target[after.qOffset ..< after.qOffset + after.columns * after.rank])
                    if before.rank == after.rank, source.count == old.qCount {
                        block.baseAddress!.update(from: source.baseAddress! + before.qOffset, count: block.count)
                    } else if redraw {
                        Philox(seed: seed, stream: Philox.stream(step, UInt64(index))).fillNormal(block)
                    }
                }
            }
        }
        makeWorkspaceUnique()
        workspace.replaceQ(newQ)
        layout = new
        // Error memories and the accumulator are packed by `errorOffset`, which depends only on
        // the (unchanged) compressed set: they stay as they are. Scratch buffers are resized by
        // `prepare` on the next call.
        assert(new.compressedCount == old.compressedCount)
    }
}
