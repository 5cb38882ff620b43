import Datasets
import Foundation
import Testing

/// Facts published for the real files, checked on the files this machine has.
@Suite struct RealDatasetTests {
    @Test func fashionMNISTCountsShapesAndMean() throws {
        let train = try ImageDataset.fashionMNIST(split: .train)
        let test = try ImageDataset.fashionMNIST(split: .test)
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train.channels == 1 && train.height == 28 && train.width == 28)
        #expect(train.pixels.count == 60_000 * 784 && test.pixels.count == 10_000 * 784)
        #expect(train.classCounts() == [Int](repeating: 6_000, count: 10))
        #expect(test.classCounts() == [Int](repeating: 1_000, count: 10))
        // Published training-set statistics: mean 0.2860, std 0.3530 (to 4 decimals).
        let stats = train.channelStatistics()
        #expect(abs(stats.mean[0] - 0.2860) < 5e-5)
        #expect(abs(stats.standardDeviation[0] - 0.3530) < 5e-5)
        #expect(abs(Double(train.mean[0]) - stats.mean[0]) < 5e-5)
    }

    @Test func cifarSubsetCountsAndClasses() throws {
        let train = try ImageDataset.cifar10(directory: DataPaths.cifar, split: .train)
        let test = try ImageDataset.cifar10(directory: DataPaths.cifar, split: .test)
        #expect(train.count == 10_000 && test.count == 2_000)
        #expect(train.pixels.count == 10_000 * 3072)
        #expect(train.classCounts() == [Int](repeating: 1_000, count: 10))
        #expect(test.classCounts() == [Int](repeating: 200, count: 10))
        // The subset's README: channel means match the official ones (0.4914, 0.4822, 0.4465)
        // within JPEG error; 0.01 is about 2.5 grey levels.
        let stats = train.channelStatistics()
        for ch in 0..<3 { #expect(abs(stats.mean[ch] - Double(train.mean[ch])) < 0.01) }
    }

    @Test func wikiTextTokenCountsAndUnknownMapping() throws {
        let valid = try TextCorpus.words(path: DataPaths.wikiText + "/valid.txt")
        let test = try TextCorpus.words(path: DataPaths.wikiText + "/test.txt")
        #expect(valid.count == 217_646)
        #expect(test.count == 245_569)
        let corpus = try LanguageCorpus.wikiText(directory: DataPaths.wikiText)
        #expect(corpus.train.count == 217_646 && corpus.test.count == 245_569)
        // Vocabulary from the training split used (valid); test words outside it become <unk>.
        let unk = try #require(corpus.vocabulary.id("<unk>"))
        let validWords = Set(valid)
        let outside = test.filter { !validWords.contains($0) }.count
        let expectedUnknown = outside + test.filter { $0 == "<unk>" }.count
        #expect(outside > 0)
        #expect(corpus.test.filter { $0 == unk }.count == expectedUnknown)
        #expect(corpus.vocabulary.count == validWords.union(["<unk>"]).count)
        #expect(corpus.train.allSatisfy { corpus.vocabulary.tokens[$0] != "" })
    }

    @Test func tinyShakespeareHas65Characters() throws {
        let corpus = try LanguageCorpus.characters(path: DataPaths.shakespeare)
        #expect(corpus.vocabulary.count == 65)
        #expect(corpus.train.count + corpus.test.count == 1_115_394)  // ASCII file: bytes = characters
        #expect(corpus.train.count == 1_115_394 * 9 / 10)
    }
}
