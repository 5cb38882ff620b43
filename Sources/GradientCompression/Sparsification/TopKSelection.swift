import LinearAlgebra

/// Selection of the k largest magnitudes of a buffer, exactly (radix select) or from a sampled
/// threshold (DGC's estimator, ALGORITHMS.md §5.5). Both return k indices in increasing order.
///
/// Magnitudes are compared through their fp32 bit patterns with the sign bit cleared: for
/// non-NaN floats the pattern order is the order of |x|, so a radix select on 31-bit integer
/// keys needs no float comparisons and no sort. NaN patterns are above every number, so a NaN
/// is always selected and the encoder reports it.
public enum TopKSelection {
    @inlinable
    static func key(_ x: Float) -> UInt32 { x.bitPattern & 0x7FFF_FFFF }

    /// The k-th largest key of `keys` and how many keys are strictly larger, by three rounds of
    /// radix selection on bits 30…20, 19…10, 9…0; each round keeps only the keys of one bin.
    @usableFromInline
    static func kthLargestKey(_ source: UnsafeBufferPointer<Float>, k: Int) -> (key: UInt32, strictlyAbove: Int) {
        precondition(k >= 1 && k <= source.count)
        var above = 0
        var need = k
        var prefix: UInt32 = 0
        var candidates: [UInt32] = []
        let rounds: [(shift: UInt32, bits: UInt32)] = [(20, 11), (10, 10), (0, 10)]
        for (round, r) in rounds.enumerated() {
            var histogram = [Int](repeating: 0, count: 1 << Int(r.bits))
            let mask = (UInt32(1) << r.bits) - 1
            histogram.withUnsafeMutableBufferPointer { h in
                if round == 0 {
                    for x in source { h[Int((key(x) >> r.shift) & mask)] &+= 1 }
                } else {
                    for c in candidates { h[Int((c >> r.shift) & mask)] &+= 1 }
                }
            }
            // The bin, from the top, where the running count reaches `need`.
            var bin = histogram.count - 1
            var cumulative = 0
            while cumulative + histogram[bin] < need { cumulative += histogram[bin]; bin -= 1 }
            above += cumulative
            need -= cumulative
            prefix |= UInt32(bin) << r.shift
            let highMask: UInt32 = ~((UInt32(1) << r.shift) - 1) & 0x7FFF_FFFF
            if round == 0 {
                candidates.reserveCapacity(histogram[bin])
                for x in source where key(x) & highMask == prefix { candidates.append(key(x)) }
            } else {
                candidates.removeAll(where: { $0 & highMask != prefix })
            }
        }
        return (prefix, above)
    }

    /// The indices of exactly k largest |xᵢ| (ties at the threshold resolved by lowest index), ascending.
    ///
    /// One pass over the data in the common case: a strided 1% sample gives a key below which
    /// the k-th largest lies with high probability (the sample's ⌈1.25·k·m/n⌉ + 4√… -th largest);
    /// one vectorized pass collects every index whose key is at least that; the exact top k of
    /// those candidates (a radix select on the few gathered values) is the exact top k of the whole
    /// buffer, because every key above the k-th largest is among them. When the sample misleads
    /// (fewer than k candidates, or more than 4k), the three-round radix select over the whole
    /// buffer is used instead, so the result is always exact.
    public static func exact(_ values: UnsafeBufferPointer<Float>, k: Int) -> [Int32] {
        guard k > 0 else { return [] }
        if k >= values.count { return (0..<Int32(values.count)).map { $0 } }
        let n = values.count
        if n >= 1 << 16 {
            let stride = 100
            var sample = [Float]()
            sample.reserveCapacity(n / stride + 1)
            var i = 0
            while i < n { sample.append(values[i]); i &+= stride }
            // Expected count of sampled keys above the k-th largest: k·m/n; 25% and 4 standard
            // deviations (√(k·m/n)) of margin make the candidate set a superset with high probability.
            let expected = Double(k) * Double(sample.count) / Double(n)
            let sampleK = Int((1.25 * expected + 4 * expected.squareRoot() + 4).rounded(.up))
            if sampleK <= sample.count {
                let low = sample.withUnsafeBufferPointer { kthLargestKey($0, k: sampleK).key }
                if let candidates = collect(values, atLeast: low, limit: 4 * k + 1024), candidates.count >= k {
                    return topOfCandidates(values, candidates, k: k)
                }
            }
        }
        return radixExact(values, k: k)
    }

    /// Exactly k largest by the three-round radix select over the whole buffer (three passes).
    @usableFromInline
    static func radixExact(_ values: UnsafeBufferPointer<Float>, k: Int) -> [Int32] {
        let (threshold, above) = kthLargestKey(values, k: k)
        var ties = k - above
        var result = [Int32]()
        result.reserveCapacity(k)
        for i in 0..<values.count {
            let key = key(values[i])
            if key > threshold || (key == threshold && ties > 0) {
                if key == threshold { ties -= 1 }
                result.append(Int32(truncatingIfNeeded: i))
            }
        }
        return result
    }

    /// The indices (ascending) of every element whose key is at least `threshold`, or nil as soon
    /// as there are more than `limit`. 16 keys are compared at once; only blocks holding a hit are
    /// scanned one by one.
    @usableFromInline
    static func collect(_ values: UnsafeBufferPointer<Float>, atLeast threshold: UInt32, limit: Int) -> [Int32]? {
        guard let p = values.baseAddress else { return [] }
        let n = values.count
        var found = [Int32]()
        found.reserveCapacity(Swift.min(limit, n / 64) + 16)
        // Keys are below 2³¹, so they compare correctly as signed 32-bit lanes (SSE2 has no unsigned compare).
        let t = SIMD16<Int32>(repeating: Int32(bitPattern: threshold))
        var i = 0
        while i &+ 16 <= n {
            let keys = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Int32>.self) & 0x7FFF_FFFF
            if any(keys .>= t) {
                for j in i ..< i &+ 16 where key(p[j]) >= threshold { found.append(Int32(truncatingIfNeeded: j)) }
                if found.count > limit { return nil }
            }
            i &+= 16
        }
        for j in i ..< n where key(p[j]) >= threshold { found.append(Int32(truncatingIfNeeded: j)) }
        return found.count > limit ? nil : found
    }

    /// The exact top k among `candidates` (ascending indices holding every key above the k-th largest).
    @usableFromInline
    static func topOfCandidates(_ values: UnsafeBufferPointer<Float>, _ candidates: [Int32], k: Int) -> [Int32] {
        if candidates.count == k { return candidates }
        let gathered = candidates.map { values[Int($0)] }
        // Ties keep the lowest positions among the gathered values, which are the lowest indices.
        let chosen = gathered.withUnsafeBufferPointer { radixExact($0, k: k) }
        return chosen.map { candidates[Int($0)] }
    }

    /// k indices chosen through a threshold estimated on a strided sample (DGC, §5.5): the sample
    /// holds every `stride`-th element from a random start (stride = ⌊1/sampleRatio⌋); the threshold
    /// is the ⌈k·m/n⌉-th largest of its m magnitudes. One pass collects every element at or above
    /// it; while fewer than k are found (at most 10 times) the threshold is lowered by 0.8×
    /// (DGC's rule). If at least k were found, the exact top k among them is kept; otherwise the
    /// exact selection over the whole buffer is the fallback. Always returns k indices, ascending.
    public static func sampled(_ values: UnsafeBufferPointer<Float>, k: Int, sampleRatio: Double,
                               generator: inout Xoshiro256) -> [Int32] {
        let n = values.count
        guard k > 0 else { return [] }
        if k >= n { return (0..<Int32(n)).map { $0 } }
        let stride = max(1, Int(1 / max(sampleRatio, 1e-9)))
        let start = Int(generator.next() % UInt64(stride))
        var sample = [Float]()
        sample.reserveCapacity(n / stride + 1)
        var i = start
        while i < n { sample.append(values[i]); i += stride }
        if sample.isEmpty { return exact(values, k: k) }
        // DGC takes the sample's ⌈k·m/n⌉-th largest, which finds fewer than k about half of the time
        // and costs another pass at 0.8× (measured: ~2 passes on average). The result does not depend
        // on the starting threshold (it is the exact top k of every candidate, and the candidates hold
        // every key above the k-th largest), so start with the margin of `exact`: one pass, usually.
        let expected = Double(k) * Double(sample.count) / Double(n)
        let sampleK = max(1, min(sample.count, Int((1.25 * expected + 4 * expected.squareRoot() + 4).rounded(.up))))
        var threshold = sample.withUnsafeBufferPointer { Float(bitPattern: kthLargestKey($0, k: sampleK).key) }
        var candidates: [Int32] = []
        for _ in 0..<10 {
            candidates = collect(values, atLeast: key(threshold), limit: n) ?? []  // never nil: limit n
            if candidates.count >= k || threshold == 0 { break }
            threshold *= 0.8
        }
        guard candidates.count >= k else { return exact(values, k: k) }
        return topOfCandidates(values, candidates, k: k)
    }
}
