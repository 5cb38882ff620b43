import ArgumentParser
import Datasets
import Foundation
import GradientCompression
import GradientInversion

/// `powersgd attack`: gradient inversion against what an observer of one worker's message sees,
/// per reducer (docs/privacy.md, "Gradient inversion").
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attack",
        abstract: "Reconstruct a worker's training images from its (compressed) gradient message; report PSNR, SSIM and label accuracy.",
        discussion: """
        The model is at initialization; each batch of --batch-size consecutive test images is one worker's \
        batch, its gradient passes through the reducer on a group of one worker, and the attack works on \
        the decoded message. --reducers runs a sweep; --report DIR writes report.html (table and image grid).
        """)

    @Option(help: "Attacked model: mlp, lenet (ReLU, max pooling), lenet-sigmoid (the DLG paper's network) or resnet8 (the training ResNet-8, batch norm with batch statistics).")
    var model = "mlp"
    @Option(help: "fashion-mnist or cifar10 (the CIFAR-10 subset in --data-dir).")
    var dataset = "fashion-mnist"
    @Option(help: "Directory of the Fashion-MNIST IDX files.")
    var fashionMnist = ImageDataset.fashionMNISTDirectory
    @Option(help: "Directory holding cifar10-subset/ (default: ../shared/data beside the project root found from the working directory).")
    var dataDir: String?
    @Option(help: "The reducer whose message is observed (name:key=value,...).")
    var reducer = "sgd"
    @Option(help: "A comma-separated list of reducers to sweep (overrides --reducer).")
    var reducers: String?
    @Option(help: "Examples in the worker's batch.")
    var batchSize = 1
    @Option(help: "Workers in the group, each with its own --batch-size images (consecutive blocks).")
    var workers = 1
    @Option(help: "aggregate (the decoded all-reduced message; all workers' images attacked), worker (worker 0's own messages, its images attacked; for powersgd its raw factors P_w, Q_w, matched inside the subspace they determine, also with one worker), or ring-peer (sgd: what worker 1 receives of worker 0's gradient alone in a ring all-reduce, the first 1/W of the parameters; worker 0's images attacked).")
    var observe = "aggregate"
    @Option(help: "analytic, dlg or inverting.")
    var attack = "inverting"
    @Option(help: "Images attacked per reducer (in batches of --batch-size consecutive test images, rounded up to whole batches).")
    var images = 4
    @Option(help: "Index of the first attacked test image.")
    var firstImage = 0
    @Option(help: "Optimizer iterations of dlg and inverting (with --optimizer lbfgs: objective evaluations).")
    var iterations = 300
    @Option(help: "dlg's optimizer: adam or lbfgs (the DLG paper's; inverting always uses signed Adam).")
    var optimizer = "adam"
    @Option(help: "Where dlg and inverting start: random (noise) or analytic (the analytic attack's candidates; mlp only).")
    var start = "random"
    @Option(help: "Random restarts of inverting (the best matching objective is kept).")
    var restarts = 1
    @Option(help: "Weight of inverting's total-variation prior.")
    var tv: Double = 1e-4
    @Option(help: "Hidden width of the MLP.")
    var width = 256
    @Option(help: "Seed of the model's initialization, the reducer and the attack.")
    var seed: UInt64 = 0
    @Option(help: "Gaussian mechanism before the reducer: noise standard deviation as a multiple of --clip-norm (0: none).")
    var noiseMultiplier: Double = 0
    @Option(help: "Norm the batch gradient is clipped to when --noise-multiplier is set.")
    var clipNorm: Double = 1
    @Option(help: "Write the summaries (and per-image numbers) as JSON to this file.")
    var json: String?
    @Option(help: "Write report.html (table, originals above reconstructions) into this directory.")
    var report: String?

    func validate() throws {
        guard let attacked = AttackedModel(rawValue: model) else {
            throw ValidationError("--model must be mlp, lenet, lenet-sigmoid or resnet8 (got '\(model)')")
        }
        if attacked != .mlp, attack == "analytic" {
            throw ValidationError("--attack analytic needs a fully connected first layer; --model \(model) starts with a convolution (use dlg or inverting)")
        }
        guard ["random", "analytic"].contains(start) else { throw ValidationError("--start must be random or analytic (got '\(start)')") }
        if start == "analytic", attacked != .mlp || attack == "analytic" {
            throw ValidationError("--start analytic needs --model mlp (a fully connected first layer) and --attack dlg or inverting")
        }
        guard let chosen = OptimizationAttack.Optimizer(rawValue: optimizer) else {
            throw ValidationError("--optimizer must be adam or lbfgs (got '\(optimizer)')")
        }
        if chosen == .lbfgs, attack != "dlg" {
            throw ValidationError("--optimizer lbfgs applies to --attack dlg only (inverting uses signed Adam inside the pixel box)")
        }
        guard ["fashion-mnist", "cifar10"].contains(dataset) else { throw ValidationError("--dataset must be fashion-mnist or cifar10 (got '\(dataset)')") }
        guard AttackMethod(rawValue: attack) != nil else { throw ValidationError("--attack must be analytic, dlg or inverting (got '\(attack)')") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1 (got \(workers))") }
        guard let point = ObservationPoint(rawValue: observe) else {
            throw ValidationError("--observe must be aggregate, worker or ring-peer (got '\(observe)')")
        }
        if point == .ringPeer {
            if let other = try specifications().first(where: { $0.specification.name != "sgd" }) {
                throw ValidationError("--observe ring-peer is built for sgd, whose message is the packed gradient (got \(other.specification.name))")
            }
            if attack == "analytic", batchSize > 1 {
                throw ValidationError("--observe ring-peer: the analytic attack reads one example off a weight row (the bias gradient is outside the ring peer's chunk): use --batch-size 1, or dlg or inverting")
            }
        }
        if point == .worker, workers > 1, let other = try specifications().first(where: { $0.specification.name != "powersgd" }) {
            throw ValidationError("--observe worker with --workers > 1 is built for powersgd (got \(other.specification.name)); other reducers' "
                                  + "worker messages do not depend on the other workers: use --workers 1")
        }
        guard images >= 1 else { throw ValidationError("--images must be at least 1 (got \(images))") }
        guard firstImage >= 0 else { throw ValidationError("--first-image must be 0 or more (got \(firstImage))") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1 (got \(iterations))") }
        guard restarts >= 1 else { throw ValidationError("--restarts must be at least 1 (got \(restarts))") }
        guard tv.isFinite, tv >= 0 else { throw ValidationError("--tv must be a finite number, 0 or more (got \(tv))") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1 (got \(width))") }
        guard noiseMultiplier.isFinite, noiseMultiplier >= 0 else { throw ValidationError("--noise-multiplier must be finite, 0 or more (got \(noiseMultiplier))") }
        guard clipNorm.isFinite, clipNorm > 0 else { throw ValidationError("--clip-norm must be a positive number (got \(clipNorm))") }
        _ = try specifications()
    }

    func specifications() throws -> [(specification: ReducerSpecification, name: String)] {
        try parseReducerList(reducers ?? reducer, flag: reducers == nil ? "--reducer" : "--reducers", seed: seed)
    }

    func run() throws {
        let split: ImageDataset
        do {
            if dataset == "fashion-mnist" {
                split = try ImageDataset.fashionMNIST(directory: fashionMnist, split: .test)
            } else {
                let shared = dataDir ?? DataLocation.sharedData(
                    projectRoot: DataLocation.projectRoot(containing: FileManager.default.currentDirectoryPath) ?? FileManager.default.currentDirectoryPath)
                split = try ImageDataset.cifar10(directory: shared + "/cifar10-subset", split: .test)
            }
        } catch {
            throw RuntimeError("--dataset \(dataset): \(error)")
        }
        // Each attack uses workers × batch-size images and reconstructs all of them (aggregate) or worker 0's.
        let groupSize = workers * batchSize
        let attackedPerGroup = observe == "ring-peer" || (observe == "worker" && workers > 1) ? batchSize : groupSize
        let batches = (images + attackedPerGroup - 1) / attackedPerGroup
        guard firstImage + batches * groupSize <= split.count else {
            throw RuntimeError("--images \(images) from --first-image \(firstImage) in groups of \(workers) × \(batchSize) need "
                               + "\(firstImage + batches * groupSize) test images; \(dataset) has \(split.count)", isUsageError: true)
        }
        let experiment = try InversionExperiment(images: split)
        let method = AttackMethod(rawValue: attack)!
        var summaries: [AttackSummary] = []
        print("reducer                         images  PSNR (dB)       SSIM            labels  s/batch")
        for (specification, name) in try specifications() {
            var settings = AttackSettings(reducer: specification, batchSize: batchSize, method: method)
            settings.model = AttackedModel(rawValue: model)!
            settings.hiddenWidth = width
            settings.seed = seed
            settings.iterations = iterations
            settings.restarts = restarts
            settings.optimizer = OptimizationAttack.Optimizer(rawValue: optimizer)!
            settings.startFromAnalytic = start == "analytic"
            settings.totalVariation = Float(tv)
            settings.noiseMultiplier = noiseMultiplier
            settings.clipNorm = clipNorm
            settings.workers = workers
            settings.observation = ObservationPoint(rawValue: observe)!
            let attacked = try (0..<batches).map { try experiment.attack(settings, first: firstImage + $0 * groupSize) }
            let summary = AttackSummary(reducer: specification.description, method: method, batchSize: batchSize,
                                        noiseMultiplier: noiseMultiplier, batches: attacked)
            summaries.append(summary)
            print(String(format: "%@  %6d  %6.2f ± %-6.2f  %.3f ± %.3f  %6.2f  %7.2f", (name as NSString).padding(toLength: 30, withPad: " ", startingAt: 0),
                         summary.images, summary.psnrMean, summary.psnrStandardDeviation, summary.ssimMean, summary.ssimStandardDeviation,
                         summary.labelAccuracy, summary.secondsPerBatch))
        }
        let described = "model " + (model == "mlp" ? "mlp (width \(width))" : model) + " at initialization, seed \(seed); \(dataset) test images \(firstImage)..<\(firstImage + batches * groupSize); "
            + (workers > 1 ? "\(workers) workers, observing \(["worker": "worker 0's messages", "ring-peer": "worker 0's chunk as its ring successor receives it"][observe] ?? "the aggregate"); " : "")
            + "batch size \(batchSize); attack \(attack)" + (method == .analytic ? "" : ", \(iterations) iterations, \(restarts) restart(s)")
            + (method == .dlg ? ", \(optimizer)" : "") + (start == "analytic" ? ", started from the analytic candidates" : "")
            + (method == .inverting ? ", TV \(tv)" : "") + (noiseMultiplier > 0 ? "; Gaussian noise σ = \(noiseMultiplier) × clip \(clipNorm)" : "")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            struct Output: Encodable { var settings: String; var results: [AttackSummary] }
            try writeOutputFile(try encoder.encode(Output(settings: described, results: summaries)), to: URL(fileURLWithPath: json))
        }
        if let report {
            do { try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true) } catch {
                throw RuntimeError("--report \(report): cannot create the directory (\(error.localizedDescription))")
            }
            let html = InversionReport.html(title: "Gradient inversion: \(attack) on \(dataset)", settings: described, summaries: summaries,
                                            channels: split.channels, height: split.height, width: split.width)
            try writeOutputFile(Data(html.utf8), to: URL(fileURLWithPath: report).appendingPathComponent("report.html"))
        }
    }
}
