@testable import Datasets
import LinearAlgebra
import Testing

/// A synthetic dataset whose pixel bytes encode the example index, so a batch tells which
/// examples it holds.
func indexedDataset(count: Int, channels: Int = 1, side: Int = 4) -> ImageDataset {
    let size = channels * side * side
    var pixels = [UInt8](repeating: 0, count: count * size)
    for i in 0..<count { for j in 0..<size { pixels[i * size + j] = UInt8((i &+ 7 &* j) & 0xff) } }
    return ImageDataset(name: "indexed", pixels: pixels, labels: (0..<count).map { UInt8($0 % 10) },
                        channels: channels, height: side, width: side, classes: 10,
                        mean: [Float](repeating: 0, count: channels), standardDeviation: [Float](repeating: 1, count: channels))
}

@Suite struct ShardingTests {
    /// Every worker's indices over one epoch, concatenated per worker.
    func epochIndices(_ batcher: ImageBatcher, epoch: Int, workers: Int, batch: Int) throws -> [[Int]] {
        let steps = batcher.stepsPerEpoch(workers: workers, batchSize: batch)
        return try (0..<workers).map { rank in
            try (0..<steps).flatMap { try batcher.trainingIndices(epoch: epoch, step: $0, rank: rank, workers: workers, batchSize: batch) }
        }
    }

    @Test(arguments: 1...4) func disjointAndCompleteWhenDivisible(workers: Int) throws {
        // 120 = lcm(1…4)·5·2: every W·B divides N, so the union must be the whole epoch.
        let data = indexedDataset(count: 120)
        let batcher = try ImageBatcher(train: data, test: data, seed: 42, augment: false)
        let parts = try epochIndices(batcher, epoch: 3, workers: workers, batch: 5)
        let all = parts.flatMap { $0 }
        #expect(all.count == 120)
        #expect(Set(all) == Set(0..<120))
        #expect(parts.allSatisfy { $0.count == parts[0].count })
    }

    @Test(arguments: 1...4) func remainderIsDroppedAndStepsAgree(workers: Int) throws {
        let n = 103, batch = 4
        let data = indexedDataset(count: n)
        let batcher = try ImageBatcher(train: data, test: data, seed: 9, augment: false)
        let steps = batcher.stepsPerEpoch(workers: workers, batchSize: batch)
        #expect(steps == n / (workers * batch))
        let parts = try epochIndices(batcher, epoch: 0, workers: workers, batch: batch)
        let all = parts.flatMap { $0 }
        #expect(Set(all).count == all.count)  // disjoint
        #expect(all.count == steps * workers * batch && n - all.count < workers * batch)
        #expect(parts.allSatisfy { $0.count == steps * batch })
        // The skipped examples are the tail of the epoch's permutation.
        #expect(Set(batcher.epochOrder(0)[all.count...]) == Set(0..<n).subtracting(all))
        #expect(throws: DatasetError.self) {
            try batcher.trainingIndices(epoch: 0, step: steps, rank: 0, workers: workers, batchSize: batch)
        }
    }

    @Test func deterministicForASeedAndDifferentAcrossEpochs() throws {
        let data = indexedDataset(count: 64)
        let a = try ImageBatcher(train: data, test: data, seed: 5, augment: true)
        let b = try ImageBatcher(train: data, test: data, seed: 5, augment: true)
        let other = try ImageBatcher(train: data, test: data, seed: 6, augment: true)
        // Ask b in another order (epoch 1 first): a batch is a pure function of its arguments.
        let b1 = try b.trainingBatch(epoch: 1, step: 2, rank: 1, workers: 2, batchSize: 8)
        let a0 = try a.trainingBatch(epoch: 0, step: 2, rank: 1, workers: 2, batchSize: 8)
        let a1 = try a.trainingBatch(epoch: 1, step: 2, rank: 1, workers: 2, batchSize: 8)
        let b0 = try b.trainingBatch(epoch: 0, step: 2, rank: 1, workers: 2, batchSize: 8)
        #expect(a0.input == b0.input && a0.labels == b0.labels)
        #expect(a1.input == b1.input && a1.labels == b1.labels)
        #expect(a.epochOrder(0) != a.epochOrder(1))
        #expect(a.epochOrder(0) != other.epochOrder(0))
        #expect(a0.input != a1.input)
    }

    @Test func badShardArgumentsThrow() throws {
        let data = indexedDataset(count: 16)
        let batcher = try ImageBatcher(train: data, test: data, seed: 1, augment: false)
        for (rank, workers, batch, epoch) in [(2, 2, 4, 0), (0, 0, 4, 0), (0, -1, 4, 0), (0, 1, 0, 0), (0, 1, 4, -1)] {
            #expect(throws: DatasetError.self) {
                try batcher.trainingIndices(epoch: epoch, step: 0, rank: rank, workers: workers, batchSize: batch)
            }
        }
    }

    @Test(arguments: 1...4) func languageModelShardsAreDisjointColumns(workers: Int) throws {
        let stream = Array(0..<1_003)
        let batch = 3, bptt = 7
        var seen: [Int] = []
        var windowCounts: Set<Int> = []
        for rank in 0..<workers {
            let batcher = try LanguageModelBatcher(stream: stream, batch: batch, bptt: bptt, rank: rank, workers: workers)
            windowCounts.insert(batcher.windows)
            var rows = 0
            for w in 0..<batcher.windows {
                let window = batcher.window(w)
                #expect(window.input.count == window.steps * batch)
                // The stream is 0, 1, 2, …: a target is its input plus one, inside one column.
                #expect(zip(window.input, window.targets).allSatisfy { $1 == $0 + 1 })
                // Column b of row t is the part's token b·rows + first + t.
                for t in 0..<window.steps { for b in 0..<batch {
                    #expect(window.input[t * batch + b] == rank * (stream.count / workers) + b * batcher.rows + w * bptt + t)
                } }
                seen += window.input
                rows += window.steps
            }
            #expect(rows == batcher.rows - 1)
        }
        #expect(windowCounts.count == 1)  // every worker makes the same number of steps
        #expect(Set(seen).count == seen.count)  // disjoint inputs across workers and windows
        let rowsPerColumn = (stream.count / workers) / batch
        #expect(seen.count == workers * batch * (rowsPerColumn - 1))
    }
}
