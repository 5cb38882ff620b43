@testable import Datasets
import LinearAlgebra
import Testing

@Suite struct AugmentationTests {
    let image: [Float] = (0..<(3 * 5 * 6)).map { Float($0) }

    @Test func flipTwiceIsIdentity() {
        let flip = ImageAugmentation(dy: 0, dx: 0, flip: true)
        let once = flip.applied(to: image, channels: 3, height: 5, width: 6)
        #expect(once != image)
        #expect(once[0] == image[5] && once[5] == image[0])  // row 0 of channel 0 mirrored
        #expect(flip.applied(to: once, channels: 3, height: 5, width: 6) == image)
    }

    @Test func cropShiftsWithZeroPadding() {
        let shift = ImageAugmentation(dy: 1, dx: -2, flip: false)
        let out = shift.applied(to: image, channels: 3, height: 5, width: 6)
        for ch in 0..<3 { for y in 0..<5 { for x in 0..<6 {
            let sy = y + 1, sx = x - 2
            let expected: Float = (sy < 5 && sx >= 0) ? image[(ch * 5 + sy) * 6 + sx] : 0
            #expect(out[(ch * 5 + y) * 6 + x] == expected)
        } } }
    }

    @Test func drawnShiftsStayWithinPaddingAndCoverIt() {
        var dys: Set<Int> = [], flips = 0
        for index in 0..<2_000 {
            let a = ImageAugmentation.drawn(seed: 3, epoch: 1, index: index, padding: 4)
            #expect((-4...4).contains(a.dy) && (-4...4).contains(a.dx))
            dys.insert(a.dy)
            flips += a.flip ? 1 : 0
        }
        #expect(dys == Set(-4...4))
        // Binomial(2000, ½): sd ≈ 22.4, so ±150 is more than 6 sd.
        #expect(abs(flips - 1_000) < 150)
        #expect(ImageAugmentation.drawn(seed: 3, epoch: 1, index: 7, padding: 4)
                == ImageAugmentation.drawn(seed: 3, epoch: 1, index: 7, padding: 4))
    }

    @Test func augmentedBatchesKeepLabelsAndShapes() throws {
        let data = indexedDataset(count: 40, channels: 3, side: 8)
        let plain = try ImageBatcher(train: data, test: data, seed: 11, augment: false)
        let augmented = try ImageBatcher(train: data, test: data, seed: 11, augment: true)
        let p = try plain.trainingBatch(epoch: 2, step: 1, rank: 0, workers: 2, batchSize: 6)
        let a = try augmented.trainingBatch(epoch: 2, step: 1, rank: 0, workers: 2, batchSize: 6)
        #expect(p.input.shape == [6, 3, 8, 8] && a.input.shape == [6, 3, 8, 8])
        #expect(p.labels == a.labels)
        #expect(p.input != a.input)
        // Each augmented image equals its plain image under the drawn augmentation (zero fill = a
        // black pixel, 0 after this dataset's identity normalization).
        let indices = try plain.trainingIndices(epoch: 2, step: 1, rank: 0, workers: 2, batchSize: 6)
        for (b, index) in indices.enumerated() {
            let plainImage = Array(p.input.scalars[(b * 192)..<((b + 1) * 192)]) .map { $0 * 255 }
            let expected = ImageAugmentation.drawn(seed: 11, epoch: 2, index: index, padding: 4)
                .applied(to: plainImage, channels: 3, height: 8, width: 8)
            #expect(Array(a.input.scalars[(b * 192)..<((b + 1) * 192)]).map { $0 * 255 } == expected)
        }
    }

    @Test func normalizationUsesChannelMeanAndDeviation() throws {
        var data = indexedDataset(count: 4, channels: 3, side: 2)
        data.mean = [0.5, 0.25, 0.125]
        data.standardDeviation = [0.5, 0.25, 2]
        let batcher = try ImageBatcher(train: data, test: data, seed: 0, augment: false)
        let batch = try batcher.testBatch(0..<4)
        for i in 0..<batch.input.count {
            let ch = (i / 4) % 3
            let x = Float(data.pixels[i]) / 255
            #expect(abs(batch.input.scalars[i] - (x - data.mean[ch]) / data.standardDeviation[ch]) < 1e-5)
        }
        #expect(batch.labels == [0, 1, 2, 3])
    }
}
