import LinearAlgebra

/// Training batches of an `ImageDataset`, shuffled per epoch and sharded by worker, and test
/// batches, normalized to `(x/255 − mean) / std` per channel.
///
/// **Order and sharding.** Epoch e is a permutation of the training set drawn from
/// (seed, e) (Fisher–Yates driven by Philox). With W workers and batch B per worker, step s of
/// worker r takes positions (s·W + r)·B ..< (s·W + r + 1)·B of that permutation: workers see
/// disjoint parts, together the first ⌊N / (W·B)⌋·W·B positions; the remaining N mod (W·B)
/// examples of the epoch are skipped (a different set each epoch), so every worker makes the
/// same number of steps. A batch is a pure function of (seed, epoch, step, rank, W, B): runs
/// repeat exactly and a resumed run continues with the right batch.
///
/// **Augmentation** (optional, CIFAR's standard): a random 32×32 crop of the image padded by 4
/// zero pixels, and a horizontal flip with probability ½, drawn from (seed, epoch, example
/// index) — the same for an example whichever worker gets it.
public final class ImageBatcher {
    public let train: ImageDataset
    public let test: ImageDataset
    public let seed: UInt64
    public let augment: Bool
    public let padding = 4
    private var cachedEpoch = -1
    private var permutation: [Int] = []

    public init(train: ImageDataset, test: ImageDataset, seed: UInt64, augment: Bool) throws {
        guard train.channels == test.channels, train.height == test.height, train.width == test.width else {
            throw DatasetError.invalidRequest("training images are \(train.channels)×\(train.height)×\(train.width), "
                                              + "test images \(test.channels)×\(test.height)×\(test.width)")
        }
        self.train = train
        self.test = test
        self.seed = seed
        self.augment = augment
    }

    public var shape: [Int] { [train.channels, train.height, train.width] }
    public var testCount: Int { test.count }

    public func stepsPerEpoch(workers: Int, batchSize: Int) -> Int {
        train.count / max(1, workers * batchSize)
    }

    /// The permutation of epoch `epoch` (cached: workers ask for many batches of one epoch).
    public func epochOrder(_ epoch: Int) -> [Int] {
        if epoch != cachedEpoch {
            permutation = Array(0..<train.count)
            var random = Xoshiro256(seed: seed, stream: Philox.stream(0x5348_5546, UInt64(epoch)))
            var i = permutation.count - 1
            while i > 0 {
                let j = Int(random.next() % UInt64(i + 1))
                permutation.swapAt(i, j)
                i -= 1
            }
            cachedEpoch = epoch
        }
        return permutation
    }

    public func trainingIndices(epoch: Int, step: Int, rank: Int, workers: Int, batchSize: Int) throws -> [Int] {
        guard (0..<workers).contains(rank), batchSize > 0 else {
            throw DatasetError.invalidRequest("rank \(rank) of \(workers) workers with batch \(batchSize) is not a valid shard")
        }
        let steps = stepsPerEpoch(workers: workers, batchSize: batchSize)
        guard (0..<steps).contains(step) else {
            throw DatasetError.invalidRequest("step \(step) is outside the \(steps) steps of an epoch of \(train.name)")
        }
        let order = epochOrder(epoch)
        let start = (step * workers + rank) * batchSize
        return Array(order[start..<(start + batchSize)])
    }

    public func trainingBatch(epoch: Int, step: Int, rank: Int, workers: Int, batchSize: Int) throws -> (input: Tensor, labels: [Int]) {
        let indices = try trainingIndices(epoch: epoch, step: step, rank: rank, workers: workers, batchSize: batchSize)
        return (images(indices, from: train, epoch: augment ? epoch : nil), indices.map { Int(train.labels[$0]) })
    }

    public func testBatch(_ range: Range<Int>) throws -> (input: Tensor, labels: [Int]) {
        guard range.lowerBound >= 0, range.upperBound <= test.count else {
            throw DatasetError.invalidRequest("test range \(range) is outside the \(test.count) test images")
        }
        let indices = Array(range)
        return (images(indices, from: test, epoch: nil), indices.map { Int(test.labels[$0]) })
    }

    /// Normalized (and, with an epoch, augmented) images `[B, C, H, W]`.
    func images(_ indices: [Int], from data: ImageDataset, epoch: Int?) -> Tensor {
        let c = data.channels, h = data.height, w = data.width, size = data.imageSize
        var out = Tensor(shape: [indices.count, c, h, w])
        let scale = (0..<c).map { 1 / (255 * data.standardDeviation[$0]) }
        let shift = (0..<c).map { -data.mean[$0] / data.standardDeviation[$0] }
        out.withUnsafeMutableBufferPointer { o in
            data.pixels.withUnsafeBufferPointer { px in
                for (b, index) in indices.enumerated() {
                    var dy = 0, dx = 0, flip = false
                    if let epoch {
                        let r = Philox(seed: seed, stream: Philox.stream(0x4155_4720, UInt64(epoch))).block(UInt64(index))
                        dy = Int(r[0] % UInt32(2 * padding + 1)) - padding
                        dx = Int(r[1] % UInt32(2 * padding + 1)) - padding
                        flip = r[2] & 1 == 1
                    }
                    let source = index * size, target = b * size
                    for ch in 0..<c {
                        let zero = shift[ch]  // a padded (black) pixel, normalized
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sx = (flip ? w - 1 - x : x) + dx
                                let value: Float = (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                    ? Float(px[source + (ch * h + sy) * w + sx]) * scale[ch] + shift[ch] : zero
                                o[target + (ch * h + y) * w + x] = value
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
