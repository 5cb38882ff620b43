import ArgumentParser
import Collectives
import CollectivesMPI
import EmulatedCluster
import Foundation
import GradientCompression
import Training

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

    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.")
    var resume = false

    @Option(help: "Write one JSON line per step and per evaluation to this file.")
    var logFile: String?

    func validate() throws {
        _ = try parsedReducer()
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more (got \(checkpointEvery))") }
        if resume && checkpointDir == nil { throw ValidationError("--resume needs --checkpoint-dir") }
        if checkpointEvery > 0 && checkpointDir == nil { throw ValidationError("--checkpoint-every needs --checkpoint-dir") }
    }

    func parsedReducer() throws -> ReducerSpecification {
        do {
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
            _ = try ReducerCatalog.make(specification, seed: settings.seed)
            return specification
        } catch {
            throw ValidationError("--reducer: \(error)")
        }
    }

    func run() throws {
        let experiment = try Experiment(settings.experimentConfiguration)
        var session = try TrainingSession(experiment: experiment, reducer: try parsedReducer(),
                                          network: settings.network, projectedWorkers: settings.projectWorkers)
        session.checkpointDirectory = checkpointDir.map { URL(fileURLWithPath: $0) }
        session.checkpointEvery = checkpointEvery
        session.resume = resume
        session.logFile = logFile.map { URL(fileURLWithPath: $0) }
        let workers = settings.workers
        let output = TerminalOutput()
        if settings.backend == "threads" { output.line("powersgd train: \(settings.model) on \(experiment.dataDescription); \(workers) workers (threads), reducer \(reducer)") }
        let runs = try runWorkers(settings: settings) { group in
            try session.run(group: group, onStep: { record, total in
                output.progress(step: record.step + 1, total: total, epoch: record.epoch, loss: record.loss,
                                examples: settings.batchSize * group.size)
            }, onEvaluation: { record in
                output.line(String(format: "evaluation after step %d (epoch %d): %@ %.4f", record.step, record.epoch + 1,
                                   record.metric.rawValue, record.value))
            })
        }
        guard let result = runs.first, !result.run.steps.isEmpty else { return }
        output.line(Summary(result: result, network: settings.network, projectedWorkers: settings.projectWorkers).text)
    }
}

/// Runs `body` on the configured transport: N threads of this process, or this MPI rank.
func runWorkers<T>(settings: TrainingArguments, _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
    switch settings.backend {
    case "threads":
        return try runThreads(workers: settings.workers, body)
    default:
        // One worker per MPI rank: launched by `mpirun -np N powersgd train --backend mpi ...`.
        let communicator: MPICommunicator
        do { communicator = try MPICommunicator() } catch { throw RuntimeError("--backend mpi: \(error)") }
        defer { try? MPICommunicator.finalize() }
        do {
            let result = try body(communicator)
            try writeClusterLedger(communicator)
            return [result]
        } catch {
            FileHandleStandardError.write("powersgd: rank \(communicator.rank): \(error)\n")
            MPICommunicator.abort(code: 1)
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
func runThreads<T>(workers: Int, _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
    do { return try InProcessGroup.run(workers: workers, body) } catch let error as WorkerError {
        throw RuntimeError("worker \(error.rank): \(error.underlying)")
    }
}

/// A runtime failure with its cause (exit code 1).
struct RuntimeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
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
        c.schedule = ExperimentConfiguration.Schedule(rawValue: schedule) ?? .cosine
        c.warmupSteps = warmupSteps
        c.momentum = momentum
        c.nesterov = nesterov
        c.weightDecay = weightDecay
        c.clipNorm = clipNorm
        c.seed = seed
        c.width = width
        c.evaluateEvery = evaluateEvery
        return c
    }
}
