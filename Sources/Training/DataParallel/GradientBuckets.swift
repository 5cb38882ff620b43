/// How a step's gradients are cut into buckets for `--overlap`: consecutive tensors in reverse
/// parameter order — the order backward finishes them — each bucket closing as soon as its
/// gradient bytes (4 per element) reach the capacity, as PyTorch DDP's `bucket_cap_mb` does
/// (default 25 MiB; Li et al., "PyTorch Distributed", VLDB 2020, §3.2.3). The last bucket takes
/// what is left. A capacity at least the model's size gives one bucket: no overlap.
public struct GradientBuckets: Sendable, Equatable {
    /// The buckets' tensor index ranges in the order they are reduced: the last tensors first.
    public let ranges: [Range<Int>]

    /// The buckets of a list with `shapes` at `capacityBytes` (> 0) per bucket.
    public init(shapes: [[Int]], capacityBytes: Double) {
        precondition(capacityBytes > 0, "bucket capacity \(capacityBytes) must be positive")
        var ranges: [Range<Int>] = []
        var upper = shapes.count, bytes = 0.0
        for index in shapes.indices.reversed() {
            bytes += 4 * Double(shapes[index].reduce(1, *))
            if bytes >= capacityBytes {
                ranges.append(index..<upper)
                upper = index
                bytes = 0
            }
        }
        if upper > 0 { ranges.append(0..<upper) }
        self.ranges = ranges
    }

    /// The bucket holding each tensor index.
    var bucketOfTensor: [Int] {
        var owner = [Int](repeating: 0, count: ranges.map(\.upperBound).max() ?? 0)
        for (bucket, range) in ranges.enumerated() { for index in range { owner[index] = bucket } }
        return owner
    }
}
