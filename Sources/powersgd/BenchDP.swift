import ArgumentParser
import Foundation
import LinearAlgebra
import NeuralNetworks
import Privacy
import Training

/// `powersgd bench dp`: the DP-SGD step (per-example gradients, clipping, sum, Gaussian noise)
/// against the non-private step (forward + backward of the mean loss) on the same model and batch,
/// one thread, for the MLP, ResNet-8 with group norm and the LSTM (one backward per window);
/// batch-norm ResNet-8, which DP-SGD refuses, is listed with the reason. With `--peer`, Opacus
/// (`scripts/opacus-dp-step.py`) measures the same two steps on the same models right after.
struct BenchDP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dp",
        abstract: "DP-SGD step vs non-private step (ms, ratio) at batch 32: efficient per-example clipping and one backward per example.")

    @Flag(help: "Print JSON (the output is always JSON; accepted for symmetry with the other benches).")
    var json = false

    @Option(help: "Timed steps per measurement (the median is reported, after one warm-up step).")
    var repeats = 7

    @Option(help: "Examples per step.")
    var batchSize = 32

    @OptionGroup var peer: PeerArguments

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
        /// With --peer: Opacus's two steps on the same model, measured in this run.
        var opacus: OpacusResult?
        /// Our private-step ratio over Opacus's.
        var ratioOverOpacusRatio: Double?
        /// Why DP-SGD refuses the model, when it does.
        var refused: String?
    }

    /// One line of `scripts/opacus-dp-step.py`.
    struct OpacusResult: Codable {
        var model: String
        var parameters: Int
        var nonPrivateMs: Double
        var privateMs: Double
        var ratio: Double
        var versions: String
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
        results.append(try measure(mlp, name: "mlp"))
        let groupNorm = try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 28, baseWidth: 16, normalization: .group, seed: 1)
        results.append(try measure(groupNorm, name: "resnet8-gn"))
        let resnet = try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 28, baseWidth: 16, seed: 1)
        results.append(ModelResult(model: "resnet8", parameters: resnet.parameterCount, batchSize: batchSize,
                                   refused: PerExampleGradients.unsupportedReason(resnet)))
        results.append(try measureLanguageModel())
        // The peer runs after ours, alone on the cores, on the models we measured.
        let measured = results.filter { $0.ratio != nil && $0.model != "lstm" }.map(\.model)
        if let output = try peer.output(script: "opacus-dp-step.py", directory: "scripts",
                                        arguments: ["--repeats", "\(repeats)", "--batch-size", "\(batchSize)",
                                                    "--models", measured.joined(separator: ",")],
                                        environment: ["OPENBLAS_NUM_THREADS": "1"]) {
            let peers = try output.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
                try JSONDecoder().decode(OpacusResult.self, from: Data($0.utf8))
            }
            for (i, r) in results.enumerated() {
                guard let p = peers.first(where: { $0.model == r.model }) else { continue }
                guard p.parameters == r.parameters else {
                    throw RuntimeError("--peer: Opacus's \(p.model) has \(p.parameters) parameters, ours \(r.parameters): not the same model")
                }
                results[i].opacus = p
                results[i].ratioOverOpacusRatio = r.ratio.map { $0 / p.ratio }
            }
        }
        try BenchmarkReport.print(Report(models: results, notes:
            "thread CPU time, median of \(repeats) rounds after one warm-up round, each round timing the four parts one after the other, 1 thread; "
            + "private = PerExampleGradients.clippedSum (C = 1) + N(0, σ²C²) on "
            + "every parameter (σ = 1); non-private = forward + backward of the mean loss; the optimizer step (the same in both) is not "
            + "timed; ratio = private / non-private; opacus = scripts/opacus-dp-step.py on the same models after ours "
            + "(GradSampleModule + DPOptimizer.pre_step, thread CPU time, 1 thread)"))
    }

    func measure(_ model: Classifier, name: String) throws -> ModelResult {
        let input = Philox(seed: 3, stream: 1).normalTensor(shape: [batchSize] + model.inputShape)
        let labels = (0..<batchSize).map { $0 % model.classes }
        let method = PerExampleGradients.method(for: model)
        return try measure(name: name, parameters: model.parameters, method: method, plainStep: {
            model.zeroGradients()
            _ = try model.lossAndGradients(input: input, labels: labels)
        }, clippedSum: { method in
            _ = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 1, perLayer: false, method: method)
        })
    }

    /// The LSTM of `train --model lstm` on WikiText-2 (vocabulary 33,278, 2 layers of 200, tied
    /// weights, BPTT 35) on random tokens: the non-private step on `batchSize` columns against the
    /// DP step on as many windows (`LanguageModelWindows`: one backward per window).
    func measureLanguageModel() throws -> ModelResult {
        let vocabulary = 33_278, bptt = 35
        let model = try LSTMLanguageModel(vocabularySize: vocabulary, embeddingSize: 200, hiddenSize: 200, layers: 2, dropout: 0.2,
                                          tiedWeights: true, seed: 1)
        var random = Xoshiro256(seed: 3, stream: 2)
        let stream = (0..<(batchSize * bptt + 1)).map { _ in Int(random.next() % UInt64(vocabulary)) }
        let windows = LanguageModelWindows(model: model, stream: stream, bptt: bptt)
        // Column b of the [T, B] block is window b (time-major, as LanguageModelBatcher lays it out).
        let tokens = (0..<(bptt * batchSize)).map { i in stream[(i % batchSize) * bptt + i / batchSize] }
        let targets = (0..<(bptt * batchSize)).map { i in stream[(i % batchSize) * bptt + i / batchSize + 1] }
        return try measure(name: "lstm", parameters: model.parameters, method: .oneBackwardPerExample, plainStep: {
            model.zeroGradients()
            model.resetState()
            _ = try model.lossAndGradients(tokens: tokens, targets: targets, steps: bptt, batch: batchSize)
        }, clippedSum: { _ in
            _ = try windows.clippedSum(Array(0..<batchSize), epoch: 0, clip: 1, perLayer: false)
        })
    }

    /// Times the non-private step, the clipped sum by `method`, the noise and (when `method` is
    /// not already it) the one-backward-per-example clipped sum.
    func measure(name: String, parameters: [Parameter], method: PerExampleGradients.Method, plainStep: @escaping () throws -> Void,
                 clippedSum: @escaping (PerExampleGradients.Method) throws -> Void) throws -> ModelResult {
        var step: UInt64 = 0
        let addNoise = {
            step += 1
            for (k, p) in parameters.enumerated() {
                p.gradient.withUnsafeMutableBufferPointer {
                    GaussianNoise.add(to: $0, standardDeviation: 1, seed: 1, stream: Philox.stream(step, UInt64(k)))
                }
            }
        }
        var parts: [() throws -> Void] = [plainStep, { try clippedSum(method) }, addNoise]
        if method != .oneBackwardPerExample { parts.append { try clippedSum(.oneBackwardPerExample) } }
        // CPU time of this thread (BLAS runs in it with one thread): what each part costs on a core
        // of its own, whether or not other processes share the cores. Interleaved, one of each per
        // round, medians over the rounds (after one warm-up round).
        var times = parts.map { _ in [Double]() }
        for round in 0...repeats {
            for (k, part) in parts.enumerated() {
                let t0 = threadCPUSeconds()
                try part()
                if round > 0 { times[k].append(threadCPUSeconds() - t0) }
            }
        }
        let medians = times.map { $0.sorted()[$0.count / 2] }
        let plain = medians[0], clipping = medians[1], noise = medians[2]
        let efficient = clipping + noise
        let loop = method == .oneBackwardPerExample ? nil : medians[3] + noise
        return ModelResult(model: name, parameters: parameters.reduce(0) { $0 + $1.value.count }, batchSize: batchSize,
                           nonPrivateStepMs: plain * 1e3, privateStepMs: efficient * 1e3, ratio: efficient / plain,
                           method: method.rawValue, clippedSumMs: clipping * 1e3, noiseMs: noise * 1e3,
                           oneBackwardPerExampleStepMs: loop.map { $0 * 1e3 }, oneBackwardPerExampleRatio: loop.map { $0 / plain })
    }
}
