import Collectives
import Datasets
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks

/// What the observer of a group of several workers sees: the decoded aggregate (what every
/// worker, and a ring peer at the end, holds), one worker's own messages before they are summed
/// (what a parameter server receives from it; for PowerSGD the raw factors P_w, Q_w), or what
/// worker 1 receives of worker 0's contribution alone in a ring all-reduce (`ringPeer`).
public enum ObservationPoint: String, Sendable, Codable, CaseIterable {
    case aggregate, worker
    /// Worker 0's successor in a ring all-reduce of W workers. The buffer is cut into W chunks
    /// (chunk c = elements ⌊n·c/W⌋ ..< ⌊n·(c+1)/W⌋, the chunks of `InProcessGroup`), and in the
    /// first step of the reduce-scatter worker r sends its own chunk r to worker r + 1; every
    /// later message to worker 1 is a sum over several workers. So worker 1 sees worker 0's
    /// gradient alone on chunk 0 of the packed buffer (the first 1/W of the parameters in
    /// order), and nothing of it alone elsewhere. Built for `sgd`, whose message is that buffer.
    case ringPeer = "ring-peer"
}

/// Which attack reconstructs the batch.
public enum AttackMethod: String, Sendable, Codable, CaseIterable {
    case analytic, dlg, inverting
}

/// The attacked network: the project's MLP (`NeuralNetworks.MLP`, mirrored), `LeNet` (ReLU,
/// max pooling), `SigmoidLeNet` (the DLG paper's network), or the project's training ResNet-8:
/// `NeuralNetworks.ResNet.small(depth: 8)` built from the seed and mirrored by `GradientMap`,
/// which copies its parameters in (so the initialization is the training model's by
/// construction), batch norm with batch statistics as in a training step.
public enum AttackedModel: String, Sendable, Codable, CaseIterable {
    case mlp, lenet
    case sigmoidLeNet = "lenet-sigmoid"
    case resnet8
}

/// One attack setting: the model at initialization, one worker's batch, the reducer whose message
/// the observer sees, optional Gaussian noise on the gradient before compression, and the attack.
public struct AttackSettings: Sendable {
    public var reducer: ReducerSpecification
    public var batchSize: Int
    public var method: AttackMethod
    public var model: AttackedModel = .mlp
    /// Hidden width of the MLP (the project's default model has 256).
    public var hiddenWidth: Int = 256
    public var seed: UInt64 = 0
    public var iterations: Int = 300
    public var restarts: Int = 1
    public var totalVariation: Float = 1e-4
    /// DLG's optimizer (Inverting Gradients always uses signed Adam).
    public var optimizer: OptimizationAttack.Optimizer = .adam
    /// Start DLG's or Inverting Gradients' first restart from the analytic attack's candidates
    /// (MLP only) instead of noise: its exact examples and its mixtures as the start.
    public var startFromAnalytic = false
    /// DP-SGD-style Gaussian mechanism on the worker's batch gradient before the reducer: clip
    /// the whole gradient to norm `clipNorm`, add N(0, (noiseMultiplier · clipNorm)²) per
    /// coordinate. 0: no noise (and no clipping).
    public var noiseMultiplier: Double = 0
    public var clipNorm: Double = 1
    /// Workers in the group; worker w holds the `batchSize` images after worker w − 1's.
    public var workers: Int = 1
    /// With several workers: attack the aggregate (all workers' images) or worker 0's messages
    /// (its own images). With one worker the two carry the same values; for PowerSGD `.worker`
    /// also matches only in the subspace the factors determine (`LowRankObservation`).
    public var observation: ObservationPoint = .aggregate

    public init(reducer: ReducerSpecification, batchSize: Int, method: AttackMethod) {
        self.reducer = reducer
        self.batchSize = batchSize
        self.method = method
    }
}

/// One attacked batch: originals and reconstructions in [0, 1] (`[C, H, W]` each, the
/// reconstruction paired with the original it matches best), their quality and the labels.
public struct AttackedBatch: Sendable, Codable {
    public var imageIndices: [Int]
    public var originals: [[Float]]
    public var reconstructions: [[Float]]
    public var psnr: [Double]
    public var ssim: [Double]
    public var labels: [Int]
    public var recoveredLabels: [Int]
    /// Multiset overlap of recovered and true labels over the batch size.
    public var labelAccuracy: Double
    public var seconds: Double
}

/// Runs attacks on a dataset's images: builds the model, computes one worker's gradient (the MLP's
/// and ResNet-8's with the project's `Classifier`, the LeNets' with their `GradientMap`), passes it through the reducer on a group of one (so the observed
/// message is exactly what this worker's message decodes to), and reconstructs.
public final class InversionExperiment {
    public let images: ImageDataset
    public let domain: InputDomain
    private let batcher: ImageBatcher

    /// `images`: the split the attacked examples come from.
    public init(images: ImageDataset) throws {
        self.images = images
        batcher = try ImageBatcher(train: images, test: images, seed: 0, augment: false)
        domain = InputDomain(channels: images.channels, height: images.height, width: images.width,
                             lower: (0..<images.channels).map { -images.mean[$0] / images.standardDeviation[$0] },
                             upper: (0..<images.channels).map { (1 - images.mean[$0]) / images.standardDeviation[$0] })
    }

    /// The attacked training-library model at initialization (seed `settings.seed`): the MLP, or
    /// ResNet-8 for `.resnet8` (the LeNets exist only as `GradientMap`s).
    public func model(_ settings: AttackSettings) throws -> Classifier {
        if settings.model == .resnet8 {
            guard images.height == images.width else {
                throw InversionError.unsupportedModel("ResNet-8 takes square images (got \(images.height)×\(images.width))")
            }
            return try ResNet.small(depth: 8, classes: images.classes, inputChannels: images.channels, imageSize: images.height,
                                    seed: settings.seed)
        }
        return MLP.make(inputShape: [images.channels, images.height, images.width], hidden: [settings.hiddenWidth],
                        classes: images.classes, seed: settings.seed)
    }

    /// What the observer sees of the MLP's gradient on a batch: the decoded message of one worker.
    public func observe(_ settings: AttackSettings, model: Classifier, input: Tensor, labels: [Int]) throws -> ObservedGradient {
        model.zeroGradients()
        _ = try model.lossAndGradients(input: input, labels: labels)
        return try observe(settings, gradients: model.parameters.map(\.gradient))
    }

    /// The decoded message of one worker whose gradient is `gradients`.
    public func observe(_ settings: AttackSettings, gradients: [Tensor]) throws -> ObservedGradient {
        try observeAggregate(settings, workerGradients: [gradients])
    }

    /// Every worker's gradient (after the optional Gaussian mechanism) through one step of the
    /// reducer; returns the decoded output and worker 0's float all-reduces.
    private func reduce(_ settings: AttackSettings, workerGradients: [[Tensor]]) throws
        -> (decoded: [Tensor], records: [RecordingCommunicator.Record]) {
        var workerGradients = workerGradients
        if settings.noiseMultiplier > 0 {
            for w in workerGradients.indices { addGaussianMechanism(&workerGradients[w], settings, worker: w) }
        }
        let specification = settings.reducer, seed = settings.seed, inputs = workerGradients
        let results = try InProcessGroup.run(workers: inputs.count) { group -> ([Tensor], [RecordingCommunicator.Record]) in
            let recorder = RecordingCommunicator(group)
            var reducer = try ReducerCatalog.make(specification, seed: seed)
            var message = inputs[group.rank]
            group.traffic.beginStep()
            _ = try reducer.reduce(&message, over: recorder)
            return (message, recorder.records)
        }
        return (results[0].0, results[0].1)
    }

    /// The decoded aggregate of the workers' messages (with one worker: its decoded message).
    func observeAggregate(_ settings: AttackSettings, workerGradients: [[Tensor]]) throws -> ObservedGradient {
        let specification = settings.reducer
        let tensors = try reduce(settings, workerGradients: workerGradients).decoded.map(\.scalars)
        guard tensors.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
            throw InversionError.observation("reducer \(specification) produced a message with non-finite values")
        }
        // A sparsifier's message says which coordinates it carries; the others are unknown, not zero.
        let sparse = ["topk", "randomk", "dgc"].contains(specification.name)
        return ObservedGradient(tensors: tensors, transmitted: sparse ? tensors.map { $0.map { $0 != 0 } } : nil)
    }

    /// The ring peer's batch-1 analytic attack: the two signs of the largest visible row of the
    /// first layer's weight gradient (`AnalyticAttack.signCandidatesFromWeightRows`), and of those
    /// and every label the pair whose gradient is nearest the observed chunk in cosine distance
    /// (the bias and last-layer gradients, which iDLG needs, are outside the chunk).
    func ringPeerAnalytic(network: GradientMap, observed: ObservedGradient) throws -> (input: [Float], labels: [Int]) {
        guard network.layers.first is DenseLayer, let visible = observed.transmitted?[0] else {
            throw InversionError.unsupportedModel("the analytic attack needs a fully connected first layer")
        }
        let candidates = try AnalyticAttack.signCandidatesFromWeightRows(weightGradient: observed.tensors[0], visible: visible,
                                                                           units: observed.tensors[0].count / domain.size, domain: domain)
        var best: (distance: Float, input: [Float], label: Int)?
        for x in candidates {
            for label in 0..<network.classes {
                let g = network.gradients(input: x, batch: 1, labels: .hard([label])).gradients
                let d = GradientDistance.cosine.valueAndDirection(g, observed).value
                if d.isFinite, best.map({ d < $0.distance }) ?? true { best = (d, x, label) }
            }
        }
        guard let best else { throw InversionError.observation("no candidate's gradient is finite") }
        return (best.input, [best.label])
    }

    /// Worker 0's contribution to the plain all-reduce on chunk 0, the part its ring successor
    /// receives unsummed (`ObservationPoint.ringPeer`); the other coordinates are unknown.
    func observeRingPeer(_ settings: AttackSettings, workerGradients: [[Tensor]]) throws -> ObservedGradient {
        guard settings.reducer.name == "sgd" else {
            throw InversionError.invalidSetting("the ring peer's view is built for sgd (one all-reduce of the packed gradient); "
                                                + "\(settings.reducer.name) sends other messages")
        }
        let records = try reduce(settings, workerGradients: workerGradients).records
        guard records.count == 1, let contribution = records.first?.contribution else {
            throw InversionError.observation("sgd made \(records.count) float all-reduces, not one")
        }
        let chunk = 0 ..< contribution.count / settings.workers
        var offset = 0
        var tensors: [[Float]] = [], transmitted: [[Bool]] = []
        for gradient in workerGradients[0] {
            let range = offset ..< offset + gradient.count
            tensors.append(range.map { chunk.contains($0) ? contribution[$0] : 0 })
            transmitted.append(range.map { chunk.contains($0) })
            offset += gradient.count
        }
        return ObservedGradient(tensors: tensors, transmitted: transmitted)
    }

    /// Worker 0's PowerSGD factors (and exact biases), as `PowerSGDWorkerView`.
    func observeWorkerFactors(_ settings: AttackSettings, workerGradients: [[Tensor]]) throws -> PowerSGDWorkerView {
        guard let powerSGD = try ReducerCatalog.make(settings.reducer, seed: settings.seed) as? PowerSGD else {
            throw InversionError.invalidSetting("observing one worker's messages in a group is built for powersgd (its message depends on the "
                                                + "other workers through P̂); \(settings.reducer.name)'s worker message is its one-worker observation")
        }
        let records = try reduce(settings, workerGradients: workerGradients).records
        return try PowerSGDWorkerView(options: powerSGD.options, layout: powerSGD.layout(for: workerGradients[0].map(\.shape)),
                                      records: records)
    }

    private func addGaussianMechanism(_ gradients: inout [Tensor], _ settings: AttackSettings, worker: Int) {
        let norm = gradients.reduce(0.0) { $0 + $1.scalars.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        let scale = Float(min(1, settings.clipNorm / max(norm, 1e-30)))
        for t in gradients.indices {
            let stream = worker == 0 ? Philox.stream(0xD9, UInt64(t)) : Philox.stream(0xD9, UInt64(t), UInt64(worker))
            let noise = Philox(seed: settings.seed, stream: stream)
                .normalTensor(shape: gradients[t].shape, standardDeviation: Float(settings.noiseMultiplier * settings.clipNorm))
            for i in gradients[t].scalars.indices { gradients[t].scalars[i] = gradients[t].scalars[i] * scale + noise.scalars[i] }
        }
    }

    /// Attacks the images `first ..< first + workers · batchSize` of the split (worker w's batch
    /// the w-th block of `batchSize`): all of them through the aggregate, or worker 0's through
    /// its own messages.
    public func attack(_ settings: AttackSettings, first: Int) throws -> AttackedBatch {
        let workers = settings.workers, perWorker = settings.batchSize
        guard perWorker >= 1, workers >= 1, first >= 0, first + workers * perWorker <= images.count else {
            throw InversionError.invalidSetting("images \(first)..<\(first + workers * perWorker) are outside the \(images.count) images")
        }
        let (input, labels) = try batcher.testBatch(first..<(first + workers * perWorker))
        let network: GradientMap, workerGradients: [[Tensor]]
        func slice(_ w: Int) throws -> (Tensor, [Int]) {
            let size = perWorker * domain.size
            return (try Tensor(shape: [perWorker] + Array(input.shape.dropFirst()), scalars: Array(input.scalars[(w * size)..<((w + 1) * size)])),
                    Array(labels[(w * perWorker)..<((w + 1) * perWorker)]))
        }
        switch settings.model {
        case .mlp, .resnet8:
            let model = try model(settings)
            network = try GradientMap(mirroring: model)
            workerGradients = try (0..<workers).map { w in
                let (x, y) = try slice(w)
                model.zeroGradients()
                _ = try model.lossAndGradients(input: x, labels: y)
                return model.parameters.map(\.gradient)
            }
        case .lenet, .sigmoidLeNet:
            let make = settings.model == .lenet ? LeNet.make : SigmoidLeNet.make
            network = try make(images.channels, images.height, images.classes, settings.seed)
            workerGradients = try (0..<workers).map { w in
                let (x, y) = try slice(w)
                let g = network.gradients(input: x.scalars, batch: perWorker, labels: .hard(y)).gradients
                return try zip(g, network.parameterShapes).map { try Tensor(shape: $1, scalars: $0) }
            }
        }
        // The attacked examples: the whole group's through the aggregate, worker 0's through its
        // messages. PowerSGD's worker view also carries the projection Π, which matching uses even
        // with one worker (where its values are the decoded message's).
        let b = settings.observation == .aggregate ? workers * perWorker : perWorker
        let factorView = settings.observation == .worker && (workers > 1 || settings.reducer.name == "powersgd")
        let observed: ObservedGradient, firstLayer: (weight: [Float], bias: [Float])
        if settings.observation == .ringPeer {
            guard settings.method != .analytic || perWorker == 1 else {
                throw InversionError.invalidSetting("a ring peer's analytic attack reads one example off a weight row (no bias gradient to "
                                                    + "separate a batch's mixture): use --batch-size 1, or dlg or inverting")
            }
            observed = try observeRingPeer(settings, workerGradients: workerGradients)
            firstLayer = (observed.tensors[0], observed.tensors[1])
        } else if factorView {
            let view = try observeWorkerFactors(settings, workerGradients: workerGradients)
            observed = view.observed
            firstLayer = view.firstLayer ?? (observed.tensors[0], observed.tensors[1])
        } else {
            observed = try observeAggregate(settings, workerGradients: workerGradients)
            firstLayer = (observed.tensors[0], observed.tensors[1])
        }
        let start = Date()
        let recoveredLabels = AnalyticAttack.recoverLabels(lastBiasGradient: observed.tensors.last!, count: b)
        var reconstruction: [Float]
        var labelsOut = recoveredLabels
        func analytic() throws -> [Float] {
            guard network.layers.first is DenseLayer else {
                throw InversionError.unsupportedModel("the analytic attack needs a fully connected first layer")
            }
            return try AnalyticAttack.reconstructInputs(weightGradient: firstLayer.weight, biasGradient: firstLayer.bias, count: b).flatMap { $0 }
        }
        switch settings.method {
        case .analytic where settings.observation == .ringPeer:
            (reconstruction, labelsOut) = try ringPeerAnalytic(network: network, observed: observed)
        case .analytic:
            reconstruction = try analytic()
        case .dlg, .inverting:
            var attack = settings.method == .dlg
                ? OptimizationAttack.dlg(iterations: settings.iterations, optimizer: settings.optimizer, seed: settings.seed)
                : OptimizationAttack.inverting(iterations: settings.iterations, restarts: settings.restarts,
                                               totalVariation: settings.totalVariation, seed: settings.seed)
            attack.restarts = settings.restarts
            let result = try attack.run(network, observed: observed, batch: b, domain: domain, labels: recoveredLabels,
                                        start: settings.startFromAnalytic ? try analytic() : nil)
            reconstruction = result.inputs
            labelsOut = result.labels
        }
        let seconds = Date().timeIntervalSince(start)
        let originals = (0..<b).map { unitRange(Array(input.scalars[($0 * domain.size)..<(($0 + 1) * domain.size)])) }
        let candidates = (0..<b).map { unitRange(Array(reconstruction[($0 * domain.size)..<(($0 + 1) * domain.size)])) }
        let paired = pairByPSNR(originals: originals, candidates: candidates)
        let trueLabels = Array(labels.prefix(b))
        return AttackedBatch(imageIndices: Array(first..<(first + b)), originals: originals, reconstructions: paired,
                             psnr: zip(originals, paired).map { ImageQuality.psnr($0, $1) },
                             ssim: zip(originals, paired).map { ImageQuality.ssim($0, $1, channels: domain.channels, height: domain.height, width: domain.width) },
                             labels: trueLabels, recoveredLabels: labelsOut,
                             labelAccuracy: Self.multisetOverlap(labelsOut, trueLabels), seconds: seconds)
    }

    /// A normalized image back in [0, 1] units, clamped to the valid range.
    public func unitRange(_ normalized: [Float]) -> [Float] {
        let plane = domain.height * domain.width
        return normalized.indices.map { i in
            let c = i / plane
            return min(max(normalized[i] * images.standardDeviation[c] + images.mean[c], 0), 1)
        }
    }

    /// Greedy pairing: repeatedly the (original, candidate) pair with the highest PSNR; returns
    /// the candidate paired with each original.
    func pairByPSNR(originals: [[Float]], candidates: [[Float]]) -> [[Float]] {
        var scores: [(o: Int, c: Int, psnr: Double)] = []
        for o in originals.indices { for c in candidates.indices { scores.append((o, c, ImageQuality.psnr(originals[o], candidates[c]))) } }
        scores.sort { $0.psnr != $1.psnr ? $0.psnr > $1.psnr : ($0.o, $0.c) < ($1.o, $1.c) }
        var result = [[Float]?](repeating: nil, count: originals.count)
        var used = Set<Int>()
        for s in scores where result[s.o] == nil && !used.contains(s.c) { result[s.o] = candidates[s.c]; used.insert(s.c) }
        return result.map { $0! }
    }

    static func multisetOverlap(_ a: [Int], _ b: [Int]) -> Double {
        var counts: [Int: Int] = [:]
        for x in b { counts[x, default: 0] += 1 }
        var hits = 0
        for x in a where counts[x, default: 0] > 0 { counts[x]! -= 1; hits += 1 }
        return Double(hits) / Double(max(1, b.count))
    }
}
