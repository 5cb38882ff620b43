/// Attacks that read the input and the labels straight off the observed gradient.
public enum AnalyticAttack {
    /// Candidate inputs from a fully connected layer with bias: for output unit i,
    /// ∂ℓ/∂W_i = Σ_b δ_{b,i} x_bᵀ and ∂ℓ/∂b_i = Σ_b δ_{b,i}, so x = ∂ℓ/∂W_i / ∂ℓ/∂b_i exactly
    /// when one example b has δ_{b,i} ≠ 0 — always at batch 1, and for a batch in the rows where
    /// the ReLU after the unit is active for one example only (elsewhere the quotient is a
    /// δ-weighted mixture of the examples).
    ///
    /// Rows that yield the same input (within `tolerance`, relative) are grouped; the `count`
    /// largest groups are returned, most rows first — a group of many agreeing rows is an
    /// example recovered exactly, a lone row usually a mixture. Rows with |∂ℓ/∂b_i| below
    /// `relativeThreshold` × the largest are skipped (division by a rounding residue).
    public static func reconstructInputs(weightGradient: [Float], biasGradient: [Float], count: Int,
                                         tolerance: Float = 1e-3, relativeThreshold: Float = 1e-4) throws -> [[Float]] {
        let units = biasGradient.count
        guard units > 0, weightGradient.count % units == 0, count >= 1 else {
            throw InversionError.observation("first layer: weight gradient of \(weightGradient.count) values for \(units) bias values")
        }
        let width = weightGradient.count / units
        let largest = biasGradient.map(abs).max() ?? 0
        guard largest > 0, largest.isFinite else {
            throw InversionError.observation("the first layer's bias gradient is zero or not finite: nothing to divide by")
        }
        let rows = (0..<units).filter { abs(biasGradient[$0]) > relativeThreshold * largest }
            .sorted { abs(biasGradient[$0]) > abs(biasGradient[$1]) }
        var groups: [(representative: [Float], members: Int)] = []
        for i in rows {
            let scale = 1 / biasGradient[i]
            let candidate = (0..<width).map { weightGradient[i * width + $0] * scale }
            if let g = groups.firstIndex(where: { relativeDistance($0.representative, candidate) <= tolerance }) {
                groups[g].members += 1
            } else {
                groups.append((candidate, 1))
            }
        }
        let ranked = groups.enumerated().sorted { a, b in
            a.element.members != b.element.members ? a.element.members > b.element.members : a.offset < b.offset
        }
        var result = ranked.prefix(count).map(\.element.representative)
        // Fewer distinct groups than examples: repeat the best so the batch is complete.
        while result.count < count, let first = result.first { result.append(first) }
        return result
    }

    /// The input of a batch-1 example seen through part of a fully connected layer's weight
    /// gradient and none of its bias gradient (a ring peer's chunk, `ObservationPoint.ringPeer`):
    /// every row is ∂ℓ/∂W_i = δ_i·xᵀ, so the largest fully visible row is x up to a factor δ_i of
    /// unknown size and sign. The two signs are scaled so that each channel spans the input box
    /// [lower_c, upper_c] (a natural image has its darkest and its brightest pixel: Fashion-MNIST's
    /// have 0 and 1 in almost every image); the caller picks between them by gradient matching.
    /// Throws if no row is fully visible or every visible row is zero.
    public static func signCandidatesFromWeightRows(weightGradient: [Float], visible: [Bool], units: Int,
                                                    domain: InputDomain) throws -> [[Float]] {
        guard units > 0, weightGradient.count == units * domain.size, visible.count == weightGradient.count else {
            throw InversionError.observation("first layer: weight gradient of \(weightGradient.count) values for \(units) units of \(domain.size) inputs")
        }
        let width = domain.size
        func norm(_ i: Int) -> Float { (0..<width).reduce(0) { $0 + weightGradient[i * width + $1] * weightGradient[i * width + $1] } }
        let rows = (0..<units).filter { i in (0..<width).allSatisfy { visible[i * width + $0] } }
        guard let best = rows.max(by: { norm($0) < norm($1) }), norm(best) > 0 else {
            throw InversionError.observation("no fully visible, nonzero row of the first layer's weight gradient")
        }
        let row = Array(weightGradient[(best * width)..<((best + 1) * width)])
        let plane = domain.height * domain.width
        return [Float(1), -1].map { sign in
            var x = row.map { sign * $0 }
            for c in 0..<domain.channels {
                let part = x[(c * plane)..<((c + 1) * plane)]
                let (low, high) = (part.min()!, part.max()!)
                let scale = high > low ? (domain.upper[c] - domain.lower[c]) / (high - low) : 0
                for i in (c * plane)..<((c + 1) * plane) { x[i] = domain.lower[c] + (x[i] - low) * scale }
            }
            return x
        }
    }

    /// iDLG label recovery from the gradient of the last layer's bias (softmax cross-entropy):
    /// ∂ℓ/∂b_k = Σ_b (p_{b,k} − 1[y_b = k]) / B is negative only for classes in the batch (at
    /// batch 1, exactly the label). Returns `count` labels: the classes by increasing gradient,
    /// each negative class once, then the most negative repeated — a class that occurs twice in
    /// the batch cannot be told apart from one that occurs once by the signs alone.
    public static func recoverLabels(lastBiasGradient: [Float], count: Int) -> [Int] {
        let order = lastBiasGradient.indices.sorted { lastBiasGradient[$0] < lastBiasGradient[$1] }
        var labels = order.filter { lastBiasGradient[$0] < 0 }.prefix(count).map { $0 }
        if labels.isEmpty { labels = [order[0]] }
        var i = 0
        while labels.count < count { labels.append(labels[i % labels.count]); i += 1 }
        return labels
    }

    static func relativeDistance(_ a: [Float], _ b: [Float]) -> Float {
        var d: Float = 0, n: Float = 0
        for i in a.indices { d += (a[i] - b[i]) * (a[i] - b[i]); n += a[i] * a[i] }
        return (d / max(n, .leastNormalMagnitude)).squareRoot()
    }
}
