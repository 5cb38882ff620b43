import ArgumentParser
import Collectives
import CollectivesMPI
import EmulatedCluster
import Foundation
import GradientCompression
import NeuralNetworks
import Privacy
import Training
#if canImport(Glibc)
import Glibc
#endif

/// `powersgd train`: data-parallel training of one model with one reducer.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train",
        abstract: "Train a model data-parallel with a gradient reducer; ends with a summary of accuracy, bytes and projected time.")

    @OptionGroup var settings: TrainingArguments

    @Option(help: "The reducer and its options, e.g. powersgd:rank=2, sgd, qsgd:levels=64,bucket=512 (see 'powersgd reducers').")
    var reducer = "powersgd:rank=2"

    @Option(help: "Shorthand for the reducer option rank=N (powersgd, powersgd+, svd, lqsgd): '--reducer powersgd --rank 4'.")
    var rank: Int?

    @Option(help: "Shorthand for the reducer option levels=N (qsgd).")
    var levels: Int?

    @Option(help: "Shorthand for the reducer option bucket=N (qsgd).")
    var bucket: Int?

    @Option(help: "Shorthand for the reducer option ratio=X (topk, randomk).")
    var ratio: Double?

    @Option(help: "Shorthand for the reducer option bits=N (lqsgd).")
    var bits: Int?

    @Option(help: "Directory for checkpoints (written every --checkpoint-every steps, and when training stops on a non-finite value).")
    var checkpointDir: String?

    @Option(help: "Write a checkpoint every this many steps (0: never).")
    var checkpointEvery = 0

    @Option(help: "Checkpoints to keep in --checkpoint-dir: older step-N directories are removed (0: keep all).")
    var keepCheckpoints = 3

    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir. The flags that fix the trajectory (model, data, batch size, seed, optimizer, reducer, workers) must match the checkpoint's (exit 2 otherwise); --steps/--epochs may change.")
    var resume = false

    @Option(help: "Write one JSON line per step and per evaluation to this file.")
    var logFile: String?

    func validate() throws {
        do { _ = try ReducerCatalog.make(try reducerSpecification(), seed: settings.seed) } catch {
            throw ValidationError("--reducer: \(error)")
        }
        try settings.checkOverlap(try reducerSpecification())
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more (got \(checkpointEvery))") }
        guard keepCheckpoints >= 0 else { throw ValidationError("--keep-checkpoints must be 0 or more (got \(keepCheckpoints))") }
        if resume && checkpointDir == nil { throw ValidationError("--resume needs --checkpoint-dir") }
        if checkpointEvery > 0 && checkpointDir == nil { throw ValidationError("--checkpoint-every needs --checkpoint-dir") }
    }

    /// `--reducer` with the shorthand options (`--rank 4`) added to it.
    func reducerSpecification() throws -> ReducerSpecification {
        var specification = try ReducerSpecification(parsing: reducer)
        let shorthands: [(String, String?)] = [("rank", rank.map(String.init)), ("levels", levels.map(String.init)),
                                               ("bucket", bucket.map(String.init)), ("ratio", ratio.map { "\($0)" }),
                                               ("bits", bits.map(String.init))]
        for case let (key, value?) in shorthands {
            guard !specification.options.contains(where: { $0.key == key }) else {
                throw GradientCompressionError.invalidOption("--\(key) and the reducer option \(key)= are both given")
            }
            specification.options.append((key, value))
        }
        return specification
    }

    func run() throws {
        let experiment = try Experiment(settings.experimentConfiguration)
        try settings.checkFeasible(experiment)
        let outputs = try OutputPaths(logFile: logFile, checkpointDirectory: checkpointDir,
                                      probesLog: settings.backend == .threads || (MPILaunch()?.rank ?? 0) == 0)
        let specification = try reducerSpecification()
        var session = try TrainingSession(experiment: experiment, reducer: specification,
                                          network: settings.network, projectedWorkers: settings.projectWorkers)
        session.checkpointDirectory = checkpointDir.map { URL(fileURLWithPath: $0) }
        session.checkpointEvery = checkpointEvery
        session.keepCheckpoints = keepCheckpoints
        session.resume = resume
        session.logFile = logFile.map { URL(fileURLWithPath: $0) }
        session.overlapBucketBytes = settings.overlapBucketBytes
        let workers = settings.workers
        let output = TerminalOutput()
        if settings.backend == .threads {
            output.line("powersgd train: \(settings.model) on \(experiment.dataDescription); \(TextFormatting.counted(workers, "worker")) "
                        + "(threads), reducer \(reducer)")
        }
        if let dp = experiment.configuration.dp, settings.backend == .threads {
            let privacy = try checkPrivacy(dp, experiment: experiment, reducer: specification.name, workers: workers)
            output.line(String(format: "DP-SGD: noise multiplier σ = %.4f, clip C = %g, δ = %g, sample rate q = %.5g "
                               + "(expected lot %d), placement %@; ε is charged at σ = %.4f per step", privacy.noise, dp.clip,
                               dp.delta, privacy.sampleRate, workers * settings.batchSize, dp.placement.rawValue, privacy.accountedNoise)
                        + (privacy.accountedNoise == 0 ? " (no noise: per-example clipping only, no privacy, ε = ∞)" : ""))
        }
        let interrupt = InterruptReport(reports: settings.backend == .threads,
                                        message: InterruptReport.trainMessage(checkpointDirectory: session.checkpointDirectory))
        let runs = try runWorkers(settings: settings) { group in
            if group.rank == 0 { interrupt.reportHere() }
            return try outputs.namingWriteFailures { try session.run(group: group, onStep: { record, total in
                interrupt.completed(steps: record.step + 1)
                output.progress(step: record.step + 1, total: total, epoch: record.epoch, loss: record.loss,
                                examples: settings.batchSize * group.size, epsilon: record.epsilon)
            }, onEvaluation: { record in
                output.line(String(format: "evaluation after step %d (epoch %d): %@ %.4f", record.step, record.epoch + 1,
                                   record.metric.rawValue, record.value))
                output.evaluationFinished()
            }, onNotice: { output.line($0) }) }
        }
        guard let result = runs.first, !result.run.steps.isEmpty else { return }
        output.line(RunSummary(run: result.run, parameterCount: result.parameterCount, network: settings.network,
                               projectedWorkers: settings.projectWorkers).text)
    }
}


/// Builds rank 0's DP workload before any worker starts, so that what DP-SGD cannot run (a
/// model, reducer or placement it cannot honour, an unreachable ε, δ ≥ 1/N) is a usage error
/// naming the option (exit 2).
func checkPrivacy(_ dp: DifferentialPrivacySettings, experiment: Experiment, reducer: String, workers: Int) throws -> DifferentiallyPrivateWorkload {
    do {
        return try DifferentiallyPrivateWorkload.make(experiment.makeWorkload(rank: 0, workers: workers), settings: dp, reducer: reducer,
                                                      totalSteps: experiment.schedule(workers: workers).totalSteps, workers: workers,
                                                      seed: experiment.configuration.seed)
    } catch let error as PrivacyError {
        throw ValidationError("--dp: \(error)")
    }
}

/// Runs `body` on the configured transport: N threads of this process, or this MPI rank.
func runWorkers<T>(settings: TrainingArguments, _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
    switch settings.backend {
    case .threads:
        return try runThreads(workers: settings.workers, collectiveTimeout: settings.collectiveTimeoutSeconds, body)
    case .mpi:
        // One worker per MPI rank: launched by `mpirun -np N powersgd train --backend mpi ...`.
        let communicator: MPICommunicator
        do { communicator = try MPICommunicator(collectiveTimeout: settings.collectiveTimeoutSeconds) } catch {
            throw RuntimeError("--backend mpi: \(error)")
        }
        defer { try? MPICommunicator.finalize() }
        if settings.overlap && !communicator.providesSerializedThreads {
            throw RuntimeError("--overlap with --backend mpi: the communication thread calls MPI while the main thread "
                               + "does not, which needs MPI_THREAD_SERIALIZED; this MPI provides only \(communicator.threadLevel)")
        }
        do {
            let result = try body(communicator)
            try writeClusterLedger(communicator)
            return [result]
        } catch {
            FileHandleStandardError.write("powersgd: rank \(communicator.rank): \(error)\n")
            MPICommunicator.abort(code: isUsageError(error) ? 2 : 1)
        }
    }
}

/// Under `powersgd cluster`, leaves this rank's whole-run ledger for the cluster's byte report.
func writeClusterLedger(_ communicator: MPICommunicator) throws {
    let totals = communicator.traffic.cumulative
    try LedgerFile(rank: communicator.rank, size: communicator.size, collectives: totals.collectives,
                   payloadBytes: totals.payloadBytes, bytesSent: totals.bytesSent, bytesReceived: totals.bytesReceived,
                   seconds: totals.seconds).writeIfRequested()
}

/// Runs `body` on `workers` threads of this process; a worker's error names its rank.
func runThreads<T>(workers: Int, collectiveTimeout: Double? = CollectiveTimeout.defaultSeconds,
                   _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
    do { return try InProcessGroup.run(workers: workers, collectiveTimeout: collectiveTimeout, body) } catch let error as WorkerError {
        throw RuntimeError("worker \(error.rank): \(error.underlying)", isUsageError: isUsageError(error.underlying))
    }
}

/// Errors that mean the flags do not fit (exit 2), raised once the workers have started.
func isUsageError(_ error: Error) -> Bool {
    if case .configurationChanged? = error as? TrainingError { return true }
    if error is PrivacyError { return true }
    return false
}

/// A runtime failure with its cause (exit code 1), or a usage error found only at run time
/// (exit code 2: flags that contradict a checkpoint).
struct RuntimeError: Error, CustomStringConvertible {
    var description: String
    var isUsageError = false
    init(_ description: String, isUsageError: Bool = false) {
        self.description = description
        self.isUsageError = isUsageError
    }
}

extension TrainingArguments {
    var experimentConfiguration: ExperimentConfiguration {
        var c = ExperimentConfiguration()
        c.model = model
        c.dataset = dataset
        c.dataDirectory = dataDir
        c.batchSize = batchSize
        c.bptt = bptt
        c.epochs = epochs
        c.steps = steps
        c.learningRate = learningRate
        c.schedule = schedule
        c.warmupSteps = warmupSteps
        c.momentum = momentum
        c.nesterov = nesterov
        c.nesterovForm = nesterovForm
        c.weightDecay = weightDecay
        c.clipNorm = clipNorm
        c.seed = seed
        c.width = width
        c.convolution = convolution
        c.evaluateEvery = evaluateEvery
        c.dp = try? privacySettings()
        if syncEvery > 1, let outer = try? outerOptimizerSettings() { c.localSGD = LocalSGDSettings(syncEvery: syncEvery, outer: outer) }
        return c
    }
}
