import Foundation
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
    private let lock = NSLock()

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
    /// Thread-safe: worker threads of one process may share a batcher.
    public func epochOrder(_ epoch: Int) -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        if epoch != cachedEpoch {
            permutation = Array(0..<train.count)
            var random = Xoshiro256(seed: seed, stream: Philox.stream(0x5348_5546, UInt64(epoch)))
            // Fisher–Yates; `next() % (i + 1)` has a modulo bias below N/2⁶⁴, negligible here.
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
        guard workers >= 1, (0..<workers).contains(rank), batchSize > 0, epoch >= 0 else {
            throw DatasetError.invalidRequest("rank \(rank) of \(workers) workers with batch \(batchSize) (epoch \(epoch)) is not a valid shard")
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

    /// Normalized (and, with an epoch, augmented) images `[B, C, H, W]`: `(x/255 − mean) / std`
    /// per channel as one multiply-add (scale = 1/(255·std), shift = −mean/std); a padded pixel is
    /// black (x = 0), i.e. `shift` after normalization.
    func images(_ indices: [Int], from data: ImageDataset, epoch: Int?) -> Tensor {
        let c = data.channels, h = data.height, w = data.width, size = data.imageSize
        var out = Tensor(shape: [indices.count, c, h, w])
        let scale = (0..<c).map { 1 / (255 * data.standardDeviation[$0]) }
        let shift = (0..<c).map { -data.mean[$0] / data.standardDeviation[$0] }
        out.withUnsafeMutableBufferPointer { o in
            data.pixels.withUnsafeBufferPointer { px in
                for (b, index) in indices.enumerated() {
                    let augmentation = epoch.map { ImageAugmentation.drawn(seed: seed, epoch: $0, index: index, padding: padding) }
                        ?? .identity
                    let source = UnsafeBufferPointer(rebasing: px[(index * size)..<((index + 1) * size)])
                    let target = UnsafeMutableBufferPointer(rebasing: o[(b * size)..<((b + 1) * size)])
                    augmentation.apply(source, to: target, channels: c, height: h, width: w, fill: shift) { v, ch in
                        Float(v) * scale[ch] + shift[ch]
                    }
                }
            }
        }
        return out
    }
}

extension ImageBatcher {
    /// The number of training images.
    public var trainingCount: Int { train.count }

    /// Training images `indices` (any order, repeats allowed), augmented as in `epoch` when the
    /// batcher augments: what a sampler other than the epoch permutation (DP-SGD's Poisson lots) uses.
    public func trainingExamples(_ indices: [Int], epoch: Int) throws -> (input: Tensor, labels: [Int]) {
        guard indices.allSatisfy({ (0..<train.count).contains($0) }) else {
            throw DatasetError.invalidRequest("a training index is outside the \(train.count) images of \(train.name)")
        }
        return (images(indices, from: train, epoch: augment ? epoch : nil), indices.map { Int(train.labels[$0]) })
    }
}
