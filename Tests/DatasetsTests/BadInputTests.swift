import Datasets
import Foundation
import Testing

/// Broken files, generated in a temporary directory: each must give a `DatasetError` whose
/// message names the file and the problem.
@Suite struct BadInputTests {
    func idxHeader(_ dims: [Int]) -> [UInt8] {
        [0, 0, 8, UInt8(dims.count)] + dims.flatMap { d in [24, 16, 8, 0].map { UInt8((d >> $0) & 0xff) } }
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test func truncatedAndWrongMagicIDX() throws {
        let dir = try DataPaths.temporaryDirectory("idx")
        let truncated = dir + "/truncated-idx3-ubyte"
        try DataPaths.write(idxHeader([3, 28, 28]) + [UInt8](repeating: 7, count: 2 * 784), to: truncated)
        let m1 = message { _ = try IDXFile(path: truncated) }
        #expect(m1.contains(truncated) && m1.contains("truncated") && m1.contains("2352") && m1.contains("1568"))

        let magic = dir + "/magic-idx3-ubyte"
        try DataPaths.write([0x1f, 0x00, 0x08, 0x03] + [UInt8](repeating: 0, count: 20), to: magic)
        let m2 = message { _ = try IDXFile(path: magic) }
        #expect(m2.contains(magic) && m2.contains("wrong magic number 1f 00 08 03"))

        let floats = dir + "/float-idx1-ubyte"
        try DataPaths.write([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], to: floats)
        let m3 = message { _ = try IDXFile(path: floats) }
        #expect(m3.contains(floats) && m3.contains("0xd is not unsigned byte"))

        let short = dir + "/short"
        try DataPaths.write([0, 0], to: short)
        #expect(message { _ = try IDXFile(path: short) }.contains("shorter than an IDX header"))
    }

    /// Extents of 0xFFFFFFFF: their product overflows Int, which must be a corrupt-file error, not a trap.
    @Test func idxExtentsWhoseProductOverflowsAreCorrupt() throws {
        let dir = try DataPaths.temporaryDirectory("idx-overflow")
        for rank in [2, 3, 4] {
            let path = dir + "/huge\(rank)-idx3-ubyte"
            try DataPaths.write(idxHeader([Int](repeating: 0xFFFF_FFFF, count: rank)) + [1, 2, 3], to: path)
            let m = message { _ = try IDXFile(path: path) }
            #expect(m.contains(path) && m.contains("overflows") && m.contains("4294967295"), "\(m)")
        }
    }

    @Test func truncatedGzip() throws {
        let dir = try DataPaths.temporaryDirectory("gzip")
        let original = try Data(contentsOf: URL(fileURLWithPath: DataPaths.fashionMNIST + "/t10k-labels-idx1-ubyte.gz"))
        let path = dir + "/t10k-labels-idx1-ubyte.gz"
        try DataPaths.write([UInt8](original.prefix(2_000)), to: path)
        let m = message { _ = try IDXFile(path: path) }
        #expect(m.contains(path) && m.contains("gzip stream is truncated"))

        let garbage = dir + "/garbage.gz"
        try DataPaths.write([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xff, count: 64), to: garbage)
        let g = message { _ = try IDXFile(path: garbage) }
        #expect(g.contains(garbage) && g.contains("not a valid gzip stream"))
    }

    @Test func fashionMNISTLabelOutOfRangeAndCountMismatch() throws {
        let dir = try DataPaths.temporaryDirectory("fashion")
        try DataPaths.write(idxHeader([3, 2, 2]) + [UInt8](repeating: 0, count: 12), to: dir + "/t10k-images-idx3-ubyte")
        try DataPaths.write(idxHeader([3]) + [1, 10, 2], to: dir + "/t10k-labels-idx1-ubyte")
        let m = message { _ = try ImageDataset.fashionMNIST(directory: dir, split: .test) }
        #expect(m.contains(dir + "/t10k-labels-idx1-ubyte") && m.contains("label 10 of image 1 is outside 0…9"))

        try DataPaths.write(idxHeader([2]) + [1, 2], to: dir + "/t10k-labels-idx1-ubyte")
        let c = message { _ = try ImageDataset.fashionMNIST(directory: dir, split: .test) }
        #expect(c.contains("[2] labels for 3 images"))
    }

    @Test func missingDatasetsSayWhereAndHow() throws {
        let dir = try DataPaths.temporaryDirectory("missing")
        let f = message { _ = try ImageDataset.fashionMNIST(directory: dir, split: .train) }
        #expect(f.contains(dir) && f.contains("train-images-idx3-ubyte.gz") && f.contains("dataset-fashion-mnist")
                && f.contains("github.com/zalandoresearch/fashion-mnist"))
        let c = message { _ = try ImageDataset.cifar10(directory: dir, split: .train) }
        #expect(c.contains(dir) && c.contains("data_batch_1.bin") && c.contains("cs.toronto.edu/~kriz/cifar.html"))
        let w = message { _ = try LanguageCorpus.wikiText(directory: dir) }
        #expect(w.contains(dir) && w.contains("test.txt"))
        let s = message { _ = try LanguageCorpus.characters(path: dir + "/input.txt") }
        #expect(s.contains("input.txt") && s.contains("char-rnn"))
    }

    @Test func cifarWrongSizeAndLabelOutOfRange() throws {
        let dir = try DataPaths.temporaryDirectory("cifar")
        let path = dir + "/test_batch.bin"
        try DataPaths.write([UInt8](repeating: 1, count: 3073 * 2 + 100), to: path)
        let m = message { _ = try ImageDataset.cifar10(directory: dir, split: .test) }
        #expect(m.contains(path) && m.contains("6246 bytes") && m.contains("3073"))

        var records = [UInt8](repeating: 3, count: 3073 * 3)
        records[3073 * 2] = 12
        try DataPaths.write(records, to: path)
        let l = message { _ = try ImageDataset.cifar10(directory: dir, split: .test) }
        #expect(l.contains(path) && l.contains("record 2 has label 12"))

        records[3073 * 2] = 9
        try DataPaths.write(records, to: path)
        let ok = try ImageDataset.cifar10(directory: dir, split: .test)
        #expect(ok.count == 3 && ok.labels == [3, 3, 9])
    }

    @Test func emptyAndInvalidTextFiles() throws {
        let dir = try DataPaths.temporaryDirectory("text")
        let empty = dir + "/valid.txt"
        try DataPaths.write([], to: empty)
        let m = message { _ = try TextCorpus.words(path: empty) }
        #expect(m.contains(empty) && m.contains("is empty"))
        try DataPaths.write(Array(" \n \n".utf8), to: empty)
        #expect(message { _ = try LanguageCorpus.characters(path: empty) }.contains("is empty"))
        let binary = dir + "/binary.txt"
        try DataPaths.write([0x41, 0xff, 0xfe, 0x42], to: binary)
        let b = message { _ = try TextCorpus.words(path: binary) }
        #expect(b.contains(binary) && b.contains("not valid UTF-8"))
    }

    @Test func tooShortLanguageModelStream() throws {
        #expect(throws: DatasetError.self) { try LanguageModelBatcher(stream: Array(0..<10), batch: 4, bptt: 5, rank: 0, workers: 2) }
        #expect(throws: DatasetError.self) { try LanguageModelBatcher(stream: Array(0..<100), batch: 4, bptt: 5, rank: 2, workers: 2) }
    }
}
