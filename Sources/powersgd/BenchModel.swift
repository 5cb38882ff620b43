import ArgumentParser
import Foundation
import LinearAlgebra
import NeuralNetworks

/// `powersgd bench model`: training throughput (forward + backward + SGD step on random data)
/// of the paper's CIFAR ResNet-18 (batch 32, 3×32×32) and the 2×200 LSTM language model
/// (vocabulary 33,278, BPTT 35, batch 20), at 1 and 2 threads, ResNet-18 once per convolution
/// implementation (`--convolutions`, oneDNN against im2col in the same run), plus the convolutions' achieved
/// GFLOP/s against the sgemm peak measured in the same run; with `--peer`, against PyTorch
/// (`../shared/peers/torch_train_speed.py`) run right after, on the same machine.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "model",
        abstract: "ResNet-18 samples/s and LSTM LM tokens/s (1 and 2 threads), conv GFLOP/s vs sgemm peak.")

    @Flag(help: "Print JSON (the output is always JSON; accepted for symmetry with the other benches).")
    var json = false

    @Option(help: "Timed training steps per measurement (the median is reported, after one warm-up step).")
    var repeats = 5

    @Option(help: "Comma-separated thread counts.")
    var threads = "1,2"

    @Option(help: "Comma-separated models to run: resnet18, lstm.")
    var models = "resnet18,lstm"

    @Option(help: "Comma-separated convolution implementations to time ResNet-18 with: onednn, im2col.")
    var convolutions = "onednn,im2col"

    @OptionGroup var peer: PeerArguments

    struct ResNetResult: Codable {
        var threads: Int
        var convolution: String
        /// What ran the convolutions (oneDNN's kernel names per primitive, or im2col + sgemm).
        var convolutionKernels: [String]
        var samplesPerSecond: Double
        /// Over the im2col implementation's samples/s at the same thread count in this run.
        var ratioToIm2col: Double?
        var pytorchSamplesPerSecond: Double?
        var ratioToPyTorch: Double?
        var stepMs: Double
        var convGFLOPs: Double
        var convShareOfStep: Double
        var sgemmPeakGFLOPs: Double
        var convRatioToSgemmPeak: Double
        /// The convolutions' FLOPs of one step over the whole step time.
        var stepGFLOPs: Double
        var stepRatioToSgemmPeak: Double
        var loadAverage: Double
        /// 4 × the model's parameter count: the size of its weights (and of each gradient copy).
        var parameterBytes: Int
        /// This process's resident set before the timed steps and its peak during them (warm-up
        /// included), from /proc (VmRSS, VmHWM reset first); nil where /proc cannot be read.
        var residentBeforeStepBytes: Int?
        var stepPeakResidentBytes: Int?
        var stepPeakOverParameterBytes: Double?
        /// With --peer: the PyTorch process's peak resident set over the same model's phase of
        /// the script (read from /proc while it runs), and ours over it.
        var pytorchPeakResidentBytes: Int?
        var peakRatioToPyTorch: Double?
    }
    struct LSTMResult: Codable {
        var threads: Int
        var tokensPerSecond: Double
        var pytorchTokensPerSecond: Double?
        var ratioToPyTorch: Double?
        var stepMs: Double
        /// Product FLOPs of one step (decoder and LSTM products, forward and backward) over the step time.
        var stepGFLOPs: Double
        var sgemmPeakGFLOPs: Double
        var stepRatioToSgemmPeak: Double
        var loadAverage: Double
        /// 4 × the model's parameter count: the size of its weights (and of each gradient copy).
        var parameterBytes: Int
        /// This process's resident set before the timed steps and its peak during them (warm-up
        /// included), from /proc (VmRSS, VmHWM reset first); nil where /proc cannot be read.
        var residentBeforeStepBytes: Int?
        var stepPeakResidentBytes: Int?
        var stepPeakOverParameterBytes: Double?
        /// With --peer: the PyTorch process's peak resident set over the same model's phase of
        /// the script (read from /proc while it runs), and ours over it.
        var pytorchPeakResidentBytes: Int?
        var peakRatioToPyTorch: Double?
    }
    struct Report: Codable {
        var resnet18: [ResNetResult]
        var lstm: [LSTMResult]
        var notes: String
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard !threadCounts.isEmpty, threadCounts.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--threads must be a comma-separated list of positive integers (got '\(threads)')")
        }
        guard try !implementations.isEmpty else { throw ValidationError("--convolutions names no implementation") }
    }

    var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    var implementations: [ConvolutionImplementation] {
        get throws {
            try convolutions.split(separator: ",").map { name in
                let trimmed = name.trimmingCharacters(in: .whitespaces)
                guard let implementation = ConvolutionImplementation(rawValue: trimmed) else {
                    throw ValidationError("--convolutions: '\(trimmed)' is not one of "
                        + ConvolutionImplementation.allCases.map(\.rawValue).joined(separator: ", "))
                }
                return implementation
            }
        }
    }

    func run() throws {
        let startThreads = BLASThreads.count
        var resnets: [ResNetResult] = []
        var lstms: [LSTMResult] = []
        for t in threadCounts {
            BLASThreads.count = t
            let effective = min(t, max(1, startThreads))
            if models.contains("resnet18") {
                var rows = try implementations.map { try benchResNet(threads: effective, convolution: $0) }
                if let im2col = rows.first(where: { $0.convolution == ConvolutionImplementation.im2col.rawValue }) {
                    for i in rows.indices { rows[i].ratioToIm2col = rows[i].samplesPerSecond / im2col.samplesPerSecond }
                }
                resnets += rows
            }
            if models.contains("lstm") { lstms.append(try benchLSTM(threads: effective)) }
        }
        BLASThreads.count = startThreads
        // The peer runs after ours, alone on the cores, and prints a line per model and thread count
        // when that model's steps end: its peak resident set is read at each such line and reset
        // for the next phase (the first phase includes the import of torch).
        var peerPeaks: [String: Int] = [:]
        let output = try peer.output(script: "torch_train_speed.py", environment: ["PYTHONUNBUFFERED": "1"]) { line, pid in
            guard line.hasPrefix("threads="), let model = line.split(separator: " ").dropFirst().first else { return }
            peerPeaks["\(line.split(separator: " ")[0]) \(model)"] = ResidentMemory.peakBytes(pid: pid)
            ResidentMemory.resetPeak(pid: pid)
        }
        if let output {
            for i in resnets.indices {
                let phase = "threads=\(resnets[i].threads) resnet18"
                let theirs = PeerArguments.figure(in: output, line: phase, unit: "samples/s")
                resnets[i].pytorchSamplesPerSecond = theirs
                resnets[i].ratioToPyTorch = theirs.map { resnets[i].samplesPerSecond / $0 }
                resnets[i].pytorchPeakResidentBytes = peerPeaks[phase]
                resnets[i].peakRatioToPyTorch = Self.ratio(resnets[i].stepPeakResidentBytes, peerPeaks[phase])
            }
            for i in lstms.indices {
                let phase = "threads=\(lstms[i].threads) lstm"
                let theirs = PeerArguments.figure(in: output, line: phase, unit: "tokens/s")
                lstms[i].pytorchTokensPerSecond = theirs
                lstms[i].ratioToPyTorch = theirs.map { lstms[i].tokensPerSecond / $0 }
                lstms[i].pytorchPeakResidentBytes = peerPeaks[phase]
                lstms[i].peakRatioToPyTorch = Self.ratio(lstms[i].stepPeakResidentBytes, peerPeaks[phase])
            }
        }
        let report = Report(resnet18: resnets, lstm: lstms, notes:
            "median of \(repeats) steps after 1 warm-up; a step is zeroGradients + forward + softmax cross-entropy + backward + "
            + "SGD (ResNet: momentum 0.9, lr 0.1; LSTM: lr 20, no dropout), random data, as torch_train_speed.py; "
            + "convGFLOPs: the 20 convolutions' forward+backward FLOPs (3 products each, 2 for the stem) over their time run "
            + "alone on the shapes of the step; sgemmPeak: 1024³ cblas_sgemm at the same thread count; "
            + "BLAS threads are capped by OPENBLAS_NUM_THREADS at process start (\(startThreads) here); "
            + "memory: whole-process resident sets (ours: the peak over the model's timed steps; PyTorch's: the peak "
            + "of its script's phase for that model and thread count, interpreter and the previous phase's leftovers included)")
        try BenchmarkReport.print(report)
    }

    static func ratio(_ a: Int?, _ b: Int?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return Double(a) / Double(b)
    }

    static func parameterBytes(_ parameters: [Parameter]) -> Int { parameters.reduce(0) { $0 + 4 * $1.value.count } }

    func sgemmPeak() -> Double {
        let n = 1024
        let a = Philox(seed: 1).normalTensor(shape: [n, n]), b = Philox(seed: 2).normalTensor(shape: [n, n])
        var c = Tensor(shape: [n, n])
        let seconds = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            Benchmark.medianSeconds(repeats: 5) {
                sgemm(.none, .none, m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n,
                      c: pc.baseAddress!, ldc: n)
            } } } }
        return 2 * pow(Double(n), 3) / seconds / 1e9
    }

    func benchResNet(threads: Int, convolution: ConvolutionImplementation) throws -> ResNetResult {
        let batch = 32
        let model = ResNet.resNet18(seed: 1, threads: threads)
        model.useConvolutions(convolution)
        let sgd = SGD(options: .init(momentum: 0.9, nesterov: false), schedule: .constant(0.1))
        let x = Philox(seed: 3).normalTensor(shape: [batch, 3, 32, 32])
        var labelGenerator = Xoshiro256(seed: 4)
        let labels = (0..<batch).map { _ in Int(labelGenerator.next() % 10) }
        var failure: Error?
        let (step, before, peakBytes) = ResidentMemory.measure {
            Benchmark.medianSeconds(repeats: repeats) {
                do {
                    model.zeroGradients()
                    _ = try model.lossAndGradients(input: x, labels: labels)
                    sgd.apply(to: model.parameters)
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
        let parameterBytes = Self.parameterBytes(model.parameters)

        // The convolutions alone, on the shapes the step gave them.
        let convolutions = model.body.allLayers.compactMap { $0 as? Conv2d }
        var flops = 0.0, seconds = 0.0
        var kernels: [String] = []
        for (i, conv) in convolutions.enumerated() {
            guard let shape = conv.lastInputShape else { continue }
            let kernel = try conv.kernelDescription(inputShape: shape)
            if !kernels.contains(kernel) { kernels.append(kernel) }
            let input = Philox(seed: 10 + UInt64(i)).normalTensor(shape: shape)
            let output = try conv.forward(input, training: true)
            let gradient = Philox(seed: 100 + UInt64(i)).normalTensor(shape: output.shape)
            seconds += Benchmark.medianSeconds(repeats: 3) {
                do {
                    _ = try conv.forward(input, training: true)
                    _ = try conv.backward(gradient)
                } catch { failure = error }
            }
            flops += conv.trainingFlops(inputShape: shape)
        }
        if let failure { throw failure }
        let peak = sgemmPeak()
        let convGFLOPs = flops / seconds / 1e9
        let samples = Double(batch) / step
        return ResNetResult(threads: threads, convolution: convolution.rawValue, convolutionKernels: kernels,
                            samplesPerSecond: samples, pytorchSamplesPerSecond: nil,
                            ratioToPyTorch: nil, stepMs: step * 1e3, convGFLOPs: convGFLOPs,
                            convShareOfStep: seconds / step, sgemmPeakGFLOPs: peak, convRatioToSgemmPeak: convGFLOPs / peak,
                            stepGFLOPs: flops / step / 1e9, stepRatioToSgemmPeak: flops / step / 1e9 / peak,
                            loadAverage: MachineDescription.loadAverage(), parameterBytes: parameterBytes,
                            residentBeforeStepBytes: before, stepPeakResidentBytes: peakBytes,
                            stepPeakOverParameterBytes: Self.ratio(peakBytes, parameterBytes))
    }

    func benchLSTM(threads: Int) throws -> LSTMResult {
        let vocabulary = 33_278, steps = 35, batch = 20
        let model = try LSTMLanguageModel(vocabularySize: vocabulary, embeddingSize: 200, hiddenSize: 200, layers: 2,
                                          dropout: 0, seed: 1, threads: threads)
        let sgd = SGD(options: .init(momentum: 0), schedule: .constant(20))
        var generator = Xoshiro256(seed: 5)
        let tokens = (0..<(steps * batch)).map { _ in Int(generator.next() % UInt64(vocabulary)) }
        let targets = (0..<(steps * batch)).map { _ in Int(generator.next() % UInt64(vocabulary)) }
        var failure: Error?
        let (step, before, peakBytes) = ResidentMemory.measure {
            Benchmark.medianSeconds(repeats: repeats) {
                do {
                    model.zeroGradients()
                    _ = try model.lossAndGradients(tokens: tokens, targets: targets, steps: steps, batch: batch)
                    sgd.apply(to: model.parameters)
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
        let parameterBytes = Self.parameterBytes(model.parameters)
        let tokensPerSecond = Double(steps * batch) / step
        // Three products (forward, ∂W, ∂X) for the decoder and for each layer's input and recurrent weights.
        let rows = Double(steps * batch), h = 200.0
        let flops = 3 * 2 * rows * h * Double(vocabulary) + 2 * 3 * 2 * rows * 4 * h * (h + h)
        let peak = sgemmPeak()
        return LSTMResult(threads: threads, tokensPerSecond: tokensPerSecond, pytorchTokensPerSecond: nil,
                          ratioToPyTorch: nil, stepMs: step * 1e3,
                          stepGFLOPs: flops / step / 1e9, sgemmPeakGFLOPs: peak, stepRatioToSgemmPeak: flops / step / 1e9 / peak,
                          loadAverage: MachineDescription.loadAverage(), parameterBytes: parameterBytes,
                          residentBeforeStepBytes: before, stepPeakResidentBytes: peakBytes,
                          stepPeakOverParameterBytes: Self.ratio(peakBytes, parameterBytes))
    }
}
