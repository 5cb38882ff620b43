import ArgumentParser
import Collectives
import CollectivesMPI
import Foundation
import GradientCompression
import NeuralNetworks
import Privacy
import Training

/// The options shared by `train` and `compare`: model, data, workers, optimizer, schedule.
struct TrainingArguments: ParsableArguments {
    @Option(help: configHelp)
    var config: String?

    @Option(help: ArgumentHelp("Model: \(describedChoices(ExperimentConfiguration.Model.self, summary: \.summary)).", valueName: "model"))
    var model = ExperimentConfiguration.Model.resnet8

    @Option(help: ArgumentHelp("Dataset: \(describedChoices(ExperimentConfiguration.Dataset.self, summary: \.summary)).", valueName: "dataset"))
    var dataset = ExperimentConfiguration.Dataset.fashionMNIST

    @Option(help: "Directory holding the dataset files (default: the dataset's standard location).")
    var dataDir: String?

    @Option(help: "Number of workers (threads with --backend threads; ignored with mpi, where mpirun -np decides).")
    var workers = 4

    @Option(help: ArgumentHelp("\(describedChoices(Backend.self, summary: \.summary)).", valueName: "backend"))
    var backend = Backend.threads

    @Option(help: "Training length in epochs (fractions allowed). Ignored when --steps is given.")
    var epochs: Double = 1

    @Option(help: "Training length in optimizer steps (overrides --epochs).")
    var steps: Int?

    @Option(help: "Batch size per worker (images; for language models: sequences per worker).")
    var batchSize = 32

    @Option(help: "Back-propagation-through-time window of the language models, in tokens.")
    var bptt = 35

    @Option(help: "Base learning rate (scaled by nothing: it is the rate applied to the averaged gradient).")
    var learningRate: Double = 0.05

    @Option(help: ArgumentHelp("Learning-rate schedule after warm-up: \(describedChoices(ExperimentConfiguration.Schedule.self, summary: \.summary)).",
                               valueName: "schedule"))
    var schedule = ExperimentConfiguration.Schedule.cosine

    @Option(help: "Linear learning-rate warm-up, in steps.")
    var warmupSteps = 0

    @Option(help: "Momentum, applied after aggregation (Algorithm 2).")
    var momentum: Double = 0.9

    @Flag(inversion: .prefixedNo, help: "Nesterov momentum.")
    var nesterov = true

    @Option(help: "Nesterov step: 'pytorch' (x -= lr·(d + μ·m), torch.optim.SGD) or 'paper' (x -= lr·(d + m), the PowerSGD paper's code).")
    var nesterovForm = SGD.NesterovForm.pytorch

    @Option(help: "Weight decay (not applied to batch-norm and bias parameters).")
    var weightDecay: Double = 1e-4

    @Option(help: "Clip the averaged gradient to this global L2 norm (0: no clipping; 0.25 is usual for the LSTM).")
    var clipNorm: Double = 0

    @Option(help: "Random seed: parameters, data order, augmentation and every reducer's shared randomness.")
    var seed: UInt64 = 1

    @Option(help: "Network for the projected times: 1gbit, 10gbit, 25gbit, 100gbit, or e.g. '40gbit,5us'.")
    var network = "10gbit"

    @Option(help: "Worker count of the projected cluster.")
    var projectWorkers = 16

    @Option(help: "Evaluate every this many steps (0: at the end of each epoch).")
    var evaluateEvery = 0

    @Option(help: "Width multiplier of the ResNets, hidden size of the LSTM, hidden units of the MLP (0: the model's default).")
    var width: Double = 0

    @Option(help: "What computes the convolutions: onednn (oneDNN's kernels) or im2col (im2col + OpenBLAS sgemm, the reference they are tested against). They round differently.")
    var convolution = ConvolutionImplementation.default

    @Option(help: "Seconds a worker waits in a collective for the others before the run fails naming the workers that did not arrive (with mpi: the job is aborted); 0: no limit.")
    var collectiveTimeout: Double = CollectiveTimeout.defaultSeconds

    @Option(help: ArgumentHelp("DP-SGD: noise=σ or epsilon=ε (σ found for it), clip=C, delta=δ (< 1/N), optional placement=central|distributed|local and per-layer=true; e.g. noise=1.1,clip=1.0,delta=1e-5. Lots are Poisson-sampled at q = workers × batch-size / N. Models: mlp, resnet8-gn (batch norm is refused), lstm (windows of the token stream as examples). See docs/privacy.md.", valueName: "options"))
    var dp: String?

    @Option(help: "Local SGD / DiLoCo: inner optimizer steps per round; the reducer runs once a round on the pseudo-gradients θ₀ − θ_w, then the outer optimizer steps (1: per-step data parallelism). See docs/local-sgd.md.")
    var syncEvery = 1

    @Option(help: ArgumentHelp("Outer optimizer of --sync-every > 1: nesterov[:lr=L,momentum=M] (DiLoCo; default nesterov:lr=0.7,momentum=0.9) or sgd[:lr=L,momentum=M] (sgd:lr=1 is plain averaging).", valueName: "optimizer"))
    var outerOptimizer = "nesterov"

    /// `--outer-optimizer` parsed.
    func outerOptimizerSettings() throws -> OuterOptimizer {
        do { return try OuterOptimizer(parsing: outerOptimizer) } catch { throw ValidationError("--outer-optimizer: \(error)") }
    }

    @Flag(help: "Reduce the gradients in buckets on a communication thread while the backward pass runs (PyTorch DDP's overlap; same results). Off: reduce after backward. See docs/overlap.md.")
    var overlap = false

    @Option(help: "With --overlap: bucket capacity in MiB (fractions allowed; DDP's default 25). Smaller buckets start communicating earlier but pay the per-collective latency more often; one bucket for the whole model overlaps nothing.")
    var bucketMb: Double = 25

    /// `--overlap`'s bucket capacity in bytes; nil without `--overlap`.
    var overlapBucketBytes: Double? { overlap ? bucketMb * 1_048_576 : nil }

    /// Refuses `--overlap` with a reducer that cannot be reduced bucket by bucket, naming it and why (exit 2).
    func checkOverlap(_ specification: ReducerSpecification) throws {
        guard overlap, let reducer = try? ReducerCatalog.make(specification, seed: seed),
              case let .unsupported(reason) = reducer.bucketSupport else { return }
        throw ValidationError("--overlap: \(reducer.name) cannot be reduced bucket by bucket: \(reason)")
    }

    /// `--dp` parsed (nil without the flag).
    func privacySettings() throws -> DifferentialPrivacySettings? {
        guard let dp else { return nil }
        do { return try DifferentialPrivacySettings.parse(dp) } catch { throw ValidationError("--dp: \(error)") }
    }

    /// `--collective-timeout` for the communicators: nil for 0 (no limit).
    var collectiveTimeoutSeconds: Double? { collectiveTimeout > 0 ? collectiveTimeout : nil }

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1 (got \(workers))") }
        guard epochs > 0 else { throw ValidationError("--epochs must be positive (got \(epochs))") }
        if let steps { guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") } }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard bptt >= 1 else { throw ValidationError("--bptt must be at least 1 (got \(bptt))") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate must be a positive number (got \(learningRate))")
        }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps must be 0 or more (got \(warmupSteps))") }
        guard (0..<1).contains(momentum) else { throw ValidationError("--momentum must be in [0, 1) (got \(momentum))") }
        guard weightDecay >= 0, weightDecay.isFinite else {
            throw ValidationError("--weight-decay must be 0 or more (got \(weightDecay))")
        }
        guard clipNorm >= 0, clipNorm.isFinite else { throw ValidationError("--clip-norm must be 0 or more (got \(clipNorm))") }
        guard projectWorkers >= 1 else { throw ValidationError("--project-workers must be at least 1 (got \(projectWorkers))") }
        guard evaluateEvery >= 0 else { throw ValidationError("--evaluate-every must be 0 or more (got \(evaluateEvery))") }
        guard width >= 0, width.isFinite else { throw ValidationError("--width must be 0 or more (got \(width))") }
        // Hidden units and base channel counts are whole numbers (and must fit an Int).
        if model.hasWholeWidth, width != 0, !(width >= 1 && width < 1e15 && width.rounded() == width) {
            throw ValidationError("--width of \(model) is a whole number of units, 1 or more (got \(width))")
        }
        guard width < 1e15 else { throw ValidationError("--width \(width) is too large") }
        do { _ = try ProjectionTarget(network: network, workers: projectWorkers) } catch {
            throw ValidationError("--network: \(error)")
        }
        if backend == .threads, let launch = MPILaunch(), launch.worldSize > 1 {
            throw ValidationError("--backend threads under mpirun (\(launch.sizeVariable)=\(launch.worldSize)): each of the "
                                  + "\(launch.worldSize) ranks would run the whole job and write the same files; use --backend mpi")
        }
        guard collectiveTimeout >= 0, collectiveTimeout.isFinite else {
            throw ValidationError("--collective-timeout must be 0 (no limit) or a positive number of seconds (got \(collectiveTimeout))")
        }
        _ = try privacySettings()
        guard syncEvery >= 1 else { throw ValidationError("--sync-every must be at least 1 (got \(syncEvery))") }
        _ = try outerOptimizerSettings()
        if syncEvery > 1, dp != nil {
            throw ValidationError("--sync-every \(syncEvery) with --dp: the accountant counts one noised release per step, "
                                  + "and local steps release nothing until the round ends; use --sync-every 1 under DP")
        }
        if syncEvery > 1, overlap {
            throw ValidationError("--overlap with --sync-every \(syncEvery): local steps reduce nothing during backward; "
                                  + "the reducer runs once a round, on the pseudo-gradients")
        }
        guard bucketMb > 0, bucketMb.isFinite else {
            throw ValidationError("--bucket-mb must be a positive number of MiB (got \(bucketMb))")
        }
        if overlap && dp != nil {
            throw ValidationError("--overlap cannot run with --dp: \(DifferentiallyPrivateWorkload.overlapRefusal)")
        }
        guard model.isLanguageModel == dataset.isText else {
            let text = ExperimentConfiguration.Dataset.allCases.filter(\.isText).map(\.rawValue).joined(separator: " or ")
            let languageModels = ExperimentConfiguration.Model.allCases.filter(\.isLanguageModel).map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--model \(model) does not fit --dataset \(dataset): "
                                  + "\(languageModels) trains on \(text), the others on image datasets")
        }
    }
}

/// `--config`'s help: ConfigurationFile reads the option before ArgumentParser parses, but
/// every subcommand that takes it declares it so that `--help` shows it.
let configHelp = ArgumentHelp("Read flags from this YAML file: keys are long flag names ('workers: 4', 'nesterov: false'); "
                              + "flags on the command line override the file.", valueName: "file")

extension TrainingArguments {
    /// Refuses, before any replica is built, what cannot run: more examples per step than the
    /// training set holds, or replicas that cannot fit in this machine's memory. Usage errors
    /// naming the flags (exit 2).
    func checkFeasible(_ experiment: Experiment) throws {
        if backend == .threads {
            let size = experiment.trainingSetSize
            let (perStep, overflow) = workers.multipliedReportingOverflow(by: batchSize)
            if model.isLanguageModel {
                // Each worker's share of the token stream is cut into batch-size columns of at least 2 rows.
                guard size / workers / batchSize >= 2 else {
                    throw ValidationError("--workers \(workers) × --batch-size \(batchSize) sequences per step leave no "
                                          + "--bptt window in the \(size) training tokens of \(dataset)")
                }
            } else if overflow || perStep > size {
                throw ValidationError("--workers \(workers) × --batch-size \(batchSize) examples per step are more than "
                                      + "the \(size) training examples of \(dataset): an epoch would have no step")
            }
        }
        // Per worker at least 4 fp32 copies of the model: weights, gradients, momentum, the
        // averaged gradient (activations, error feedback and messages come on top).
        let parameters = try experiment.parameterCount()
        let replicas = backend == .threads ? Double(workers) : 1
        let needed = replicas * 4 * 4 * parameters, memory = Double(ProcessInfo.processInfo.physicalMemory)
        if needed > memory {
            let widthText = width > 0 ? "--width \(String(format: "%g", width)): " : ""
            throw ValidationError("\(widthText)\(model) has \(String(format: "%.3g", parameters)) parameters; "
                + (replicas == 1 ? "a worker" : "--workers \(workers)") + " with 4 fp32 copies of the model each (weights, "
                + "gradients, momentum, the averaged gradient) need \(needed < 1e15 ? TextFormatting.bytes(needed) : String(format: "%.3g bytes", needed)), more than this "
                + "machine's \(TextFormatting.bytes(memory)) of memory")
        }
    }
}
