import Collectives
import Datasets
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Privacy
import Testing
@testable import Training

extension SyntheticImages: IndexedImageSource {
    var trainingCount: Int { trainCount }
    func trainingExamples(_ indices: [Int], epoch: Int) throws -> (input: Tensor, labels: [Int]) { batch(indices, test: false) }
}

/// DP-SGD in the data-parallel loop (`DifferentiallyPrivateWorkload`).
@Suite struct DifferentialPrivacyTests {
    static func workload(_ spec: String, workers: Int = 1, reducer: String = "sgd", hidden: Int = 16, seed: UInt64 = 7,
                         batchSize: Int = 8, steps: Int = 20) throws -> DifferentiallyPrivateWorkload {
        let model = MLP.make(inputShape: [1, 6, 6], hidden: [hidden], classes: 4, seed: seed)
        let optimizer = SGD(options: .init(momentum: 0.9, nesterov: true), schedule: .constant(0.1))
        let inner = ClassifierWorkload(model: model, optimizer: optimizer, data: SyntheticImages(), batchSize: batchSize)
        return try DifferentiallyPrivateWorkload.make(inner, settings: try DifferentialPrivacySettings.parse(spec), reducer: reducer,
                                                      totalSteps: steps, workers: workers, seed: 11)
    }

    /// The noise this worker added at a step, in units of C: (noised − noiseless gradient) · L / (W·C).
    static func noise(_ spec: String, noiseless: String, rank: Int, workers: Int, hidden: Int) throws -> [Double] {
        let noised = try workload(spec, workers: workers, hidden: hidden), clean = try workload(noiseless, workers: workers, hidden: hidden)
        _ = try noised.computeGradients(epoch: 0, step: 1, rank: rank, workers: workers)
        _ = try clean.computeGradients(epoch: 0, step: 1, rank: rank, workers: workers)
        let lot = noised.sampleRate * Double(noised.examples.count)
        let scale = lot / Double(workers) / noised.settings.clip
        return zip(noised.gradients, clean.gradients).flatMap { a, b in zip(a.scalars, b.scalars).map { Double($0 - $1) * scale } }
    }

    /// The noise is N(0, σ²C²): over m ≈ 10⁴ elements the sample variance is within 5 % of σ²
    /// (its relative standard deviation is √(2/m) ≈ 1.4 %, so 5 % is 3.5 standard deviations) and the
    /// mean within 4 standard errors of 0; the fourth moment is 3σ⁴ within 15 % (a Gaussian's kurtosis).
    @Test func noiseHasTheStatedVariance() throws {
        let sigma = 1.3
        let n = try Self.noise("noise=\(sigma),clip=0.5,delta=1e-3", noiseless: "noise=0,clip=0.5,delta=1e-3", rank: 0, workers: 1, hidden: 256)
        let m = Double(n.count)
        let mean = n.reduce(0, +) / m
        let variance = n.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (m - 1)
        let fourth = n.reduce(0) { $0 + pow($1 - mean, 4) } / m
        #expect(n.count > 9000)
        #expect(abs(variance / (sigma * sigma) - 1) < 0.05, "variance \(variance), expected \(sigma * sigma)")
        #expect(abs(mean) < 4 * sigma / m.squareRoot(), "mean \(mean)")
        #expect(abs(fourth / (3 * pow(sigma, 4)) - 1) < 0.15, "fourth moment \(fourth)")
    }

    /// With W = 4: central puts all of σ²C² on rank 0, distributed σ²C²/W on each, local σ²C² on
    /// each; the aggregate (sum over workers) then carries σ²C², σ²C² and W·σ²C². Same 5 % bound.
    @Test(arguments: NoisePlacement.allCases)
    func placementsGiveTheStatedAggregateVariance(_ placement: NoisePlacement) throws {
        let sigma = 1.0, workers = 4
        let spec = "noise=\(sigma),clip=1,delta=1e-3,placement=\(placement.rawValue)"
        let clean = "noise=0,clip=1,delta=1e-3,placement=\(placement.rawValue)"
        var aggregate: [Double] = []
        for rank in 0..<workers {
            let n = try Self.noise(spec, noiseless: clean, rank: rank, workers: workers, hidden: 256)
            let variance = n.reduce(0) { $0 + $1 * $1 } / Double(n.count)
            let expected = sigma * sigma * placement.workerVariance(rank: rank, workers: workers)
            if expected == 0 { #expect(variance == 0, "rank \(rank) adds no noise") } else {
                #expect(abs(variance / expected - 1) < 0.05, "rank \(rank): \(variance) vs \(expected)")
            }
            aggregate = aggregate.isEmpty ? n : zip(aggregate, n).map(+)
        }
        let total = aggregate.reduce(0) { $0 + $1 * $1 } / Double(aggregate.count)
        let expected = placement == .local ? Double(workers) : 1
        #expect(abs(total / expected - 1) < 0.05, "aggregate variance \(total) vs \(expected)")
    }

    /// Poisson lots: the same examples whatever W (shards partition the lot), about q·N of them.
    @Test func lotsDoNotDependOnTheWorkerCount() throws {
        let one = try Self.workload("noise=1,clip=1,delta=1e-3", workers: 1, batchSize: 32)
        let four = try Self.workload("noise=1,clip=1,delta=1e-3", workers: 4, batchSize: 8)
        #expect(one.sampleRate == four.sampleRate)
        var sizes: [Int] = []
        for step in 0..<20 {
            let whole = one.lot(globalStep: step, rank: 0, workers: 1)
            let parts = (0..<4).flatMap { four.lot(globalStep: step, rank: $0, workers: 4) }.sorted()
            #expect(whole == parts, "step \(step)")
            sizes.append(whole.count)
        }
        let mean = Double(sizes.reduce(0, +)) / 20  // expected 32, standard deviation √(32·(1−q)) ≈ 5.3 per step
        #expect(abs(mean - 32) < 4 * 5.3 / 20.0.squareRoot(), "mean lot \(mean)")
        #expect(Set(sizes).count > 1, "Poisson lots vary in size")
    }

    /// Runs `steps` DP steps on `workers` threads; returns each rank's ε per step and final parameters.
    static func train(workers: Int, steps: Int, spec: String, reducer: String = "sgd", checkpointEvery: Int = 0,
                      directory: URL? = nil, resumeFrom: (URL, Int)? = nil) throws -> [(epsilons: [Double], parameters: [Tensor])] {
        try InProcessGroup.run(workers: workers) { group in
            var r = try ReducerCatalog.make(try ReducerSpecification(parsing: reducer), seed: 5)
            let work = try workload(spec, workers: workers, reducer: try ReducerSpecification(parsing: reducer).name, steps: steps)
            var start = 0
            if let (root, step) = resumeFrom {
                start = try Checkpoint.restore(from: root, step: step, workload: work, reducer: &r, group: group)
            }
            let trainer = DataParallelTrainer(options: .init(totalSteps: steps, checkpointEvery: checkpointEvery, checkpointDirectory: directory))
            var epsilons: [Double] = []
            try trainer.run(workload: work, reducer: &r, group: group, startStep: start, onStep: { epsilons.append($0.epsilon ?? .nan) })
            return (epsilons, work.examples.parameters.map(\.value))
        }
    }

    /// Same seed, same bits (sampling, clipping, noise, PowerSGD after it); ε grows every step and
    /// equals the accountant's for (q, σ, t).
    @Test func aDPRunIsDeterministicAndReportsEpsilon() throws {
        let spec = "noise=1.1,clip=1,delta=1e-3,placement=distributed"
        let a = try Self.train(workers: 2, steps: 6, spec: spec, reducer: "powersgd:rank=1")
        let b = try Self.train(workers: 2, steps: 6, spec: spec, reducer: "powersgd:rank=1")
        for rank in 0..<2 { #expect(a[rank].parameters == b[rank].parameters, "rank \(rank)") }
        #expect(a[0].parameters == a[1].parameters, "replicas stay identical")
        #expect(zip(a[0].epsilons, a[0].epsilons.dropFirst()).allSatisfy { $0 < $1 })
        let q = 16.0 / 256
        #expect(abs(a[0].epsilons[5] - RDPAccountant.epsilon(sampleRate: q, noise: 1.1, steps: 6, delta: 1e-3)) < 1e-12)
        let other = try Self.train(workers: 2, steps: 6, spec: "noise=1.1,clip=1,delta=1e-3,placement=distributed", reducer: "sgd")
        #expect(other[0].parameters != a[0].parameters)
    }

    /// A resume from step 3's checkpoint continues ε (the account is in the checkpoint) and the
    /// parameters of the uninterrupted run.
    @Test func resumeContinuesEpsilon() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dp-resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spec = "noise=0.9,clip=0.5,delta=1e-3"
        let full = try Self.train(workers: 2, steps: 6, spec: spec)
        _ = try Self.train(workers: 2, steps: 3, spec: spec, checkpointEvery: 3, directory: directory)
        let resumed = try Self.train(workers: 2, steps: 6, spec: spec, resumeFrom: (directory, 3))
        #expect(resumed[0].epsilons == Array(full[0].epsilons.suffix(3)))
        #expect(resumed[0].parameters == full[0].parameters)
    }

    /// What DP-SGD cannot honour is refused naming the option.
    @Test func incompatibleSettingsAreRefusedByName() throws {
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "accepted" } catch { return "\(error)" }
        }
        #expect(message { try Self.workload("noise=1,clip=1,delta=1e-3", workers: 2, reducer: "topk") }.hasPrefix("placement=central"))
        #expect(message { try Self.workload("noise=1,clip=1,delta=1e-3,placement=distributed", workers: 2, reducer: "topk") } == "accepted")
        #expect(message { try Self.workload("noise=1,clip=1,delta=0.01") }.hasPrefix("delta="))
        #expect(message { try Self.workload("epsilon=0.01,clip=1,delta=1e-3") }.contains("cannot be reached"))
        // Top-K compresses each worker's message alone: under distributed placement ε is charged at σ/√W.
        let topk = try Self.workload("noise=2,clip=1,delta=1e-3,placement=distributed", workers: 4, reducer: "topk")
        #expect(topk.accountedNoise == 1)
        let sgd = try Self.workload("noise=2,clip=1,delta=1e-3,placement=local", workers: 4)
        #expect(sgd.accountedNoise == 4)
    }

    /// A character corpus of 2,001 tokens over 6 symbols, written to a temporary file.
    static func characterCorpus() throws -> LanguageCorpus {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dp-lm-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        var random = Xoshiro256(seed: 4)
        let text = String((0..<2_001).map { _ in Array("abcde ")[Int(random.next() % 6)] })
        try text.write(to: url, atomically: true, encoding: .utf8)
        return try LanguageCorpus.characters(path: url.path)
    }

    /// The LSTM's examples are windows run from a zero state: without clipping their clipped sum
    /// equals B × the gradient of the same B windows as the columns of one batch (from a zero
    /// state, dropout off), to 1e-5 relative — which fails if a window's targets were not its
    /// inputs shifted by one, or if a window saw another's hidden state.
    @Test func languageModelWindowsAreIndependentExamples() throws {
        let corpus = try Self.characterCorpus()
        let model = try LSTMLanguageModel(vocabularySize: corpus.vocabulary.count, embeddingSize: 8, hiddenSize: 8, layers: 2,
                                          dropout: 0, tiedWeights: true, seed: 3)
        let bptt = 7, chosen = [3, 0, 11, 5]
        let windows = LanguageModelWindows(model: model, stream: corpus.train, bptt: bptt)
        #expect(windows.count == (corpus.train.count - 1) / bptt)
        let clipped = try windows.clippedSum(chosen, epoch: 0, clip: 1e9, perLayer: false)
        let perExample = model.parameters.map(\.gradient.scalars)
        let b = chosen.count
        let tokens = (0..<(bptt * b)).map { i in corpus.train[chosen[i % b] * bptt + i / b] }
        let targets = (0..<(bptt * b)).map { i in corpus.train[chosen[i % b] * bptt + i / b + 1] }
        model.zeroGradients()
        model.resetState()
        let loss = try model.lossAndGradients(tokens: tokens, targets: targets, steps: bptt, batch: b)
        var d = 0.0, n = 0.0
        for (p, q) in zip(perExample.joined(), model.parameters.flatMap(\.gradient.scalars)) {
            d += Double(p - Float(b) * q) * Double(p - Float(b) * q); n += Double(p) * Double(p)
        }
        #expect((d / n).squareRoot() < 1e-5, "relative distance \((d / n).squareRoot())")
        #expect(abs(clipped.loss - loss) < 1e-5 * loss)
        #expect(clipped.norms.count == b && clipped.norms.allSatisfy { $0 > 0 })
    }

    /// `train --dp` on the LSTM: Poisson lots of windows, clipped, noised, and the same bits for a seed.
    @Test func theLSTMTrainsUnderDP() throws {
        let corpus = try Self.characterCorpus()
        func run() throws -> (epsilon: Double, parameters: [Tensor], lots: [Int]) {
            let model = try LSTMLanguageModel(vocabularySize: corpus.vocabulary.count, embeddingSize: 8, hiddenSize: 8, layers: 1,
                                              dropout: 0.2, tiedWeights: true, seed: 3)
            let optimizer = SGD(options: .init(momentum: 0), schedule: .constant(0.5))
            let inner = LanguageModelWorkload(model: model, optimizer: optimizer, corpus: corpus, batchSize: 4, bptt: 7)
            let work = try DifferentiallyPrivateWorkload.make(inner, settings: try DifferentialPrivacySettings.parse("noise=1,clip=0.5,delta=1e-4"),
                                                              reducer: "sgd", totalSteps: 3, workers: 1, seed: 11)
            var lots: [Int] = []
            for step in 0..<3 {
                _ = try work.computeGradients(epoch: 0, step: step, rank: 0, workers: 1)
                lots.append(work.lastLotSize)
                #expect(work.lastNorms.count == work.lastLotSize)
                _ = try work.applyGradients()
            }
            return (work.account.epsilon, model.parameters.map(\.value), lots)
        }
        let a = try run(), b = try run()
        #expect(a.parameters == b.parameters && a.lots == b.lots)
        #expect(a.epsilon > 0 && a.epsilon.isFinite)
        #expect(abs(a.epsilon - RDPAccountant.epsilon(sampleRate: 4.0 / Double((corpus.train.count - 1) / 7), noise: 1, steps: 3,
                                                      delta: 1e-4)) < 1e-12)
    }
}
