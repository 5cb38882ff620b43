import ArgumentParser
import Datasets
import Foundation
import LinearAlgebra

/// `powersgd bench data`: how fast each data pipeline delivers training batches on one thread
/// so the training runs can show that data loading is not their bottleneck. The
/// limit measured in the same run is the machine's memory copy bandwidth: an image pipeline
/// writes 4 bytes per float it delivers, so `ratioToCopyBandwidth` says how far it is from a
/// plain memory copy of its output.
struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data",
        abstract: "Images or tokens per second delivered by each dataset pipeline (1 thread).")

    @Flag(help: "Print JSON (the output is always JSON; the flag is accepted for symmetry).")
    var json = false

    @Option(help: "Directory holding cifar10-subset/, wikitext-2/ and tiny-shakespeare/ (default: ../shared/data beside the project root found from the working directory).")
    var sharedData: String?

    @Option(help: "Fashion-MNIST directory.")
    var fashionMNIST = DataLocation.fashionMNIST

    @Option(help: "Examples per image batch.")
    var batchSize = 128

    @Option(help: "Seconds to spend per pipeline (at least one full pass of batches is timed).")
    var seconds = 1.0

    struct ImageResult: Codable {
        var dataset: String; var augment: Bool; var batchSize: Int; var loadSeconds: Double
        var imagesPerSecond: Double; var megabytesPerSecond: Double; var ratioToCopyBandwidth: Double
    }
    struct TokenResult: Codable {
        var dataset: String; var batch: Int; var bptt: Int; var loadSeconds: Double; var tokensPerSecond: Double
    }
    struct Report: Codable {
        var threads: Int
        var copyBandwidthGBs: Double
        var images: [ImageResult]
        var tokens: [TokenResult]
        var notes: String
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive (got \(seconds))") }
    }

    func run() throws {
        let shared = sharedData ?? DataLocation.sharedData(
            projectRoot: DataLocation.projectRoot(containing: FileManager.default.currentDirectoryPath)
                ?? FileManager.default.currentDirectoryPath)
        let copy = Benchmark.copyBandwidth()
        var images: [ImageResult] = []
        for (name, augment) in [("fashion-mnist", false), ("cifar10-subset", true)] {
            let start = Date()
            let train = name == "fashion-mnist"
                ? try ImageDataset.fashionMNIST(directory: fashionMNIST, split: .train)
                : try ImageDataset.cifar10(directory: shared + "/cifar10-subset", split: .train)
            let batcher = try ImageBatcher(train: train, test: train, seed: 1, augment: augment)
            let load = Date().timeIntervalSince(start)
            let steps = batcher.stepsPerEpoch(workers: 1, batchSize: batchSize)
            var delivered = 0, checksum: Float = 0
            let t0 = Date()
            var epoch = 0
            repeat {
                for step in 0..<steps {
                    let batch = try batcher.trainingBatch(epoch: epoch, step: step, rank: 0, workers: 1, batchSize: batchSize)
                    checksum += batch.input.scalars[0]
                    delivered += batch.labels.count
                }
                epoch += 1
            } while Date().timeIntervalSince(t0) < seconds
            let elapsed = Date().timeIntervalSince(t0)
            precondition(checksum.isFinite)
            let bytesPerSecond = Double(delivered * train.imageSize * 4) / elapsed
            images.append(ImageResult(dataset: name, augment: augment, batchSize: batchSize, loadSeconds: load,
                                      imagesPerSecond: Double(delivered) / elapsed,
                                      megabytesPerSecond: bytesPerSecond / 1e6,
                                      ratioToCopyBandwidth: bytesPerSecond / (copy * 1e9)))
        }
        var tokens: [TokenResult] = []
        for (name, batch, bptt) in [("wikitext-2", 20, 35), ("tiny-shakespeare", 64, 128)] {
            let start = Date()
            let corpus = name == "wikitext-2" ? try LanguageCorpus.wikiText(directory: shared + "/wikitext-2")
                                              : try LanguageCorpus.characters(path: shared + "/tiny-shakespeare/input.txt")
            let batcher = try LanguageModelBatcher(stream: corpus.train, batch: batch, bptt: bptt, rank: 0, workers: 1)
            let load = Date().timeIntervalSince(start)
            var delivered = 0, checksum = 0
            let t0 = Date()
            repeat {
                for w in 0..<batcher.windows {
                    let window = batcher.window(w)
                    checksum &+= window.input[0]
                    delivered += window.input.count
                }
            } while Date().timeIntervalSince(t0) < seconds
            let elapsed = Date().timeIntervalSince(t0)
            tokens.append(TokenResult(dataset: name, batch: batch, bptt: bptt, loadSeconds: load,
                                      tokensPerSecond: Double(delivered) / elapsed))
        }
        let report = Report(threads: 1, copyBandwidthGBs: copy, images: images, tokens: tokens,
            notes: "Training batches on 1 thread, normalized [B,C,H,W] floats (CIFAR with crop+flip) and [T,B] token windows; "
                 + "loadSeconds = read + decode (gzip) + vocabulary; ratioToCopyBandwidth = float bytes delivered per second / memory copy bandwidth.")
        try BenchmarkReport.print(report)
    }
}
