import ArgumentParser
import Foundation
import LinearAlgebra
import NeuralNetworks
import Privacy
import Training

/// `powersgd bench dp`: the DP-SGD step (per-example gradients, clipping, sum, Gaussian noise)
/// against the non-private step (forward + backward of the mean loss) on the same model and batch,
/// one thread. The models DP-SGD refuses (batch norm, the LSTM) are listed with the reason.
struct BenchDP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dp",
        abstract: "DP-SGD step vs non-private step (ms, ratio) at batch 32: efficient per-example clipping and one backward per example.")

    @Flag(help: "Print JSON (the output is always JSON; accepted for symmetry with the other benches).")
    var json = false

    @Option(help: "Timed steps per measurement (the median is reported, after one warm-up step).")
    var repeats = 7

    @Option(help: "Examples per step.")
    var batchSize = 32

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
    }

    struct ModelResult: Codable {
        var model: String
        var parameters: Int
        var batchSize: Int
        var nonPrivateStepMs: Double?
        var privateStepMs: Double?
        var ratio: Double?
        var method: String?
        /// Of the private step: the clipped sum alone, and the noise alone.
        var clippedSumMs: Double?
        var noiseMs: Double?
        var oneBackwardPerExampleStepMs: Double?
        var oneBackwardPerExampleRatio: Double?
        /// Why DP-SGD refuses the model, when it does.
        var refused: String?
    }

    struct Report: Codable {
        var models: [ModelResult]
        var notes: String
    }

    func run() throws {
        let saved = BLASThreads.count
        BLASThreads.count = 1
        defer { BLASThreads.count = saved }
        var results: [ModelResult] = []
        let mlp = MLP.make(inputShape: [1, 28, 28], hidden: [256], classes: 10, seed: 1)
        results.append(try measure(mlp, name: "mlp (Fashion-MNIST, 784-256-10)"))
        let resnet = try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 28, baseWidth: 16, seed: 1)
        results.append(ModelResult(model: "resnet8", parameters: resnet.parameterCount, batchSize: batchSize,
                                   refused: PerExampleGradients.unsupportedReason(resnet)))
        results.append(ModelResult(model: "lstm", parameters: 0, batchSize: batchSize,
                                   refused: "a batch is columns of one token stream with hidden state carried across batches: no example for a clipped gradient to bound"))
        try BenchmarkReport.print(Report(models: results, notes:
            "thread CPU time, median of \(repeats) rounds after one warm-up round, each round timing the four parts one after the other, 1 thread; "
            + "private = PerExampleGradients.clippedSum (C = 1) + N(0, σ²C²) on "
            + "every parameter (σ = 1); non-private = forward + backward of the mean loss; the optimizer step (the same in both) is not "
            + "timed; ratio = private / non-private"))
    }

    func measure(_ model: Classifier, name: String) throws -> ModelResult {
        let input = Philox(seed: 3, stream: 1).normalTensor(shape: [batchSize] + model.inputShape)
        let labels = (0..<batchSize).map { $0 % model.classes }
        let parameters = model.parameters
        let method = PerExampleGradients.method(for: model)
        var step: UInt64 = 0
        let plainStep = {
            model.zeroGradients()
            _ = try model.lossAndGradients(input: input, labels: labels)
        }
        let clippedSum = { (method: PerExampleGradients.Method) in
            _ = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 1, perLayer: false, method: method)
        }
        let addNoise = {
            step += 1
            for (k, p) in parameters.enumerated() {
                p.gradient.withUnsafeMutableBufferPointer {
                    GaussianNoise.add(to: $0, standardDeviation: 1, seed: 1, stream: Philox.stream(step, UInt64(k)))
                }
            }
        }
        // CPU time of this thread (BLAS runs in it with one thread): what each part costs on a core
        // of its own, whether or not other processes share the cores. Interleaved, one of each per
        // round, medians over the rounds (after one warm-up round).
        var times: [[Double]] = [[], [], [], []]
        for round in 0...repeats {
            let parts: [() throws -> Void] = [plainStep, { try clippedSum(method) }, addNoise, { try clippedSum(.oneBackwardPerExample) }]
            for (k, part) in parts.enumerated() {
                let t0 = threadCPUSeconds()
                try part()
                if round > 0 { times[k].append(threadCPUSeconds() - t0) }
            }
        }
        let medians = times.map { $0.sorted()[$0.count / 2] }
        let plain = medians[0], clipping = medians[1], noise = medians[2], loop = medians[3] + medians[2]
        let efficient = clipping + noise
        return ModelResult(model: name, parameters: model.parameterCount, batchSize: batchSize, nonPrivateStepMs: plain * 1e3,
                           privateStepMs: efficient * 1e3, ratio: efficient / plain, method: method.rawValue,
                           clippedSumMs: clipping * 1e3, noiseMs: noise * 1e3,
                           oneBackwardPerExampleStepMs: loop * 1e3, oneBackwardPerExampleRatio: loop / plain)
    }
}
