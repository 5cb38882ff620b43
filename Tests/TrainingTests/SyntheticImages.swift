import LinearAlgebra
@testable import Training

/// A small, learnable, deterministic image set for loop tests: class c's images are the class
/// prototype (drawn once from Philox) plus noise, so a model can reach high accuracy quickly.
final class SyntheticImages: LabeledImageSource {
    let shape: [Int]
    let classes: Int
    let trainCount: Int
    let testCount: Int
    let seed: UInt64
    private let prototypes: [[Float]]

    init(shape: [Int] = [1, 6, 6], classes: Int = 4, trainCount: Int = 256, testCount: Int = 64, seed: UInt64 = 3) {
        self.shape = shape
        self.classes = classes
        self.trainCount = trainCount
        self.testCount = testCount
        self.seed = seed
        let size = shape.reduce(1, *)
        prototypes = (0..<classes).map { Philox(seed: seed, stream: Philox.stream(99, UInt64($0))).normalTensor(shape: [size]).scalars }
    }

    private func example(_ index: Int, test: Bool) -> ([Float], Int) {
        let label = index % classes
        let noise = Philox(seed: seed, stream: Philox.stream(test ? 2 : 1, UInt64(index)))
            .normalTensor(shape: [prototypes[0].count], standardDeviation: 0.5).scalars
        return (zip(prototypes[label], noise).map { $0 + $1 }, label)
    }

    func batch(_ indices: [Int], test: Bool) -> (input: Tensor, labels: [Int]) {
        var scalars: [Float] = []
        var labels: [Int] = []
        for i in indices { let (x, y) = example(i, test: test); scalars += x; labels.append(y) }
        return (try! Tensor(shape: [indices.count] + shape, scalars: scalars), labels)
    }

    func stepsPerEpoch(workers: Int, batchSize: Int) -> Int { trainCount / (workers * batchSize) }

    func trainingBatch(epoch: Int, step: Int, rank: Int, workers: Int, batchSize: Int) throws -> (input: Tensor, labels: [Int]) {
        // A permutation per epoch (a multiplicative shuffle, enough for a test), then a disjoint
        // slice per worker.
        let start = (step * workers + rank) * batchSize
        let indices = (start..<start + batchSize).map { ($0 * 37 + epoch * 11) % trainCount }
        return batch(indices, test: false)
    }

    func testBatch(_ range: Range<Int>) throws -> (input: Tensor, labels: [Int]) { batch(Array(range), test: true) }
}
