extension ImageDataset {
    /// Per-channel mean and (population) standard deviation of the pixels in 0…1 units, computed
    /// from the bytes: what `mean` / `standardDeviation` should be for a training split.
    /// Sums of bytes and squared bytes are exact in `UInt64` (≤ 255² · N·H·W), so the only
    /// rounding is the final division.
    public func channelStatistics() -> (mean: [Double], standardDeviation: [Double]) {
        let plane = height * width
        var sums = [UInt64](repeating: 0, count: channels), squares = sums
        pixels.withUnsafeBufferPointer { px in
            for image in 0..<count {
                for ch in 0..<channels {
                    let base = (image &* channels &+ ch) &* plane
                    var s: UInt64 = 0, q: UInt64 = 0
                    for i in 0..<plane {
                        let v = UInt64(px[base &+ i])
                        s &+= v
                        q &+= v &* v
                    }
                    sums[ch] &+= s
                    squares[ch] &+= q
                }
            }
        }
        let n = Double(count * plane)
        let mean = sums.map { Double($0) / n / 255 }
        let deviation = (0..<channels).map { ch -> Double in
            let m = Double(sums[ch]) / n
            return (Double(squares[ch]) / n - m * m).squareRoot() / 255
        }
        return (mean, deviation)
    }

    /// The number of examples of each class `0..<classes`.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for label in labels where Int(label) < classes { counts[Int(label)] += 1 }
        return counts
    }
}
