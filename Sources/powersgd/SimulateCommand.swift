import ArgumentParser
import Foundation
import GradientCompression
import Training

/// `powersgd simulate`: "when does compression pay off?" without a cluster. From a measured
/// profile (compute time per step, each reducer's collectives per step) it projects time per step
/// and speedup for W = 1…64 workers on the given networks (`ScalingSimulation`).
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate",
        abstract: "Project time per step and speedup vs SGD for 1-64 workers on given networks, from a measured profile.",
        discussion: """
        The profile comes from one of: --profile (a JSON profile written by --save-profile), \
        --from-log (the JSON-lines log of 'train --log-file' or the runs.jsonl of 'compare'), or, \
        by default, a short measurement here: --profile-steps steps of each reducer with \
        --profile-workers in-process workers on the given model and dataset. Step time on W \
        workers = compute + optimizer + compression (as measured) + the network model's time of \
        the reducer's collectives on W ranks (no overlap; see docs/reports.md).
        """)

    @Option(help: configHelp)
    var config: String?

    @Option(help: "Read the profile from this JSON file (as written by --save-profile).")
    var profile: String?

    @Option(help: "Build the profile from the runs in this JSON-lines log (train --log-file, compare's runs.jsonl).")
    var fromLog: String?

    @Option(help: ArgumentHelp("Model to measure: \(describedChoices(ExperimentConfiguration.Model.self, summary: \.summary)).", valueName: "model"))
    var model = ExperimentConfiguration.Model.resnet18

    @Option(help: ArgumentHelp("Dataset to measure on: \(describedChoices(ExperimentConfiguration.Dataset.self, summary: \.summary)).", valueName: "dataset"))
    var dataset = ExperimentConfiguration.Dataset.cifar10

    @Option(help: "Directory holding the dataset files (default: the dataset's standard location).")
    var dataDir: String?

    @Option(help: "Batch size per worker while measuring.")
    var batchSize = 32

    @Option(help: "Reducers to measure, comma-separated with their options; must include the baseline.")
    var reducers = "sgd,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4"

    @Option(help: "The reducer speedups are measured against.")
    var baseline = "sgd"

    @Option(help: "Training steps measured per reducer (the first one is included: it is representative for every reducer here but DGC's warm-up).")
    var profileSteps = 4

    @Option(help: "In-process workers while measuring (at most the cores, so compute time is one core's).")
    var profileWorkers = 2

    @Option(help: "Seed of the measured runs.")
    var seed: UInt64 = 1

    @Option(help: "Networks to project onto, separated by ';' or spaces: presets (1gbit, 10gbit, 25gbit, 100gbit) or '<bandwidth>,<latency>'.")
    var networks = "1gbit;10gbit"

    @Option(help: "Worker counts to project onto, comma-separated.")
    var workerCounts = "1,2,4,8,16,32,64"

    @Option(help: "Replace the profile's compute seconds per step (what if each worker were a GPU computing a step in this time?); compression times stay as measured.")
    var computeSeconds: Double?

    @Option(help: "Also write the table as CSV to this file.")
    var csv: String?

    @Option(help: "Write the speedup chart (SVG) to this file.")
    var chart: String?

    @Option(help: "Write the measured profile (JSON) to this file, for later --profile runs.")
    var saveProfile: String?

    var networkNames: [String] {
        networks.split(whereSeparator: { $0 == ";" || $0 == " " }).map(String.init)
    }

    func parsedWorkerCounts() throws -> [Int] { try integers(workerCounts, "--worker-counts", 1...Int(Int32.max)) }

    func validate() throws {
        if profile != nil && fromLog != nil { throw ValidationError("give --profile or --from-log, not both") }
        _ = try parsedWorkerCounts()
        guard !networkNames.isEmpty else { throw ValidationError("--networks is empty") }
        for name in networkNames {
            do { _ = try ProjectionTarget(network: name, workers: 1) } catch { throw ValidationError("--networks: \(error)") }
        }
        guard profileSteps >= 1 else { throw ValidationError("--profile-steps must be at least 1 (got \(profileSteps))") }
        guard profileWorkers >= 1 else { throw ValidationError("--profile-workers must be at least 1 (got \(profileWorkers))") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        if let computeSeconds, !(computeSeconds.isFinite && computeSeconds >= 0) {
            throw ValidationError("--compute-seconds must be a finite number of seconds, 0 or more (got \(computeSeconds))")
        }
        if profile == nil && fromLog == nil {
            guard try parseReducerList(reducers, flag: "--reducers", seed: seed).contains(where: { $0.name == baseline }) else {
                throw ValidationError("--reducers must include the baseline '\(baseline)' (got '\(reducers)')")
            }
        }
    }

    func run() throws {
        var measured = try loadOrMeasureProfile()
        if let computeSeconds { measured.computeSeconds = computeSeconds }
        if let saveProfile { try writeOutputFile(try Self.encoder.encode(measured), to: URL(fileURLWithPath: saveProfile)) }
        let simulation: ScalingSimulation
        do {
            simulation = try ScalingSimulation(profile: measured, networks: networkNames, workerCounts: try parsedWorkerCounts())
        } catch { throw RuntimeError("simulate: \(error)") }
        print(String(format: "Profile of %@: compute %.1f ms, optimizer %.1f ms per step per worker; baseline %@.",
                     measured.model, 1e3 * measured.computeSeconds, 1e3 * measured.optimizerSeconds, measured.baseline))
        print("")
        print(simulation.markdown())
        print(([""] + simulation.verdicts()).joined(separator: "\n"))
        if let csv { try writeOutputFile(Data(simulation.csv().utf8), to: URL(fileURLWithPath: csv)) }
        if let chart { try writeOutputFile(Data(simulation.chart().svg().utf8), to: URL(fileURLWithPath: chart)) }
    }

    func loadOrMeasureProfile() throws -> SimulationProfile {
        if let profile {
            let data = try read(profile)
            do { return try JSONDecoder().decode(SimulationProfile.self, from: data) } catch {
                throw RuntimeError("--profile \(profile): not a simulation profile (\(error))")
            }
        }
        if let fromLog {
            do {
                return try SimulationProfile(runs: try RunLog.read(URL(fileURLWithPath: fromLog)), baseline: baseline)
            } catch { throw RuntimeError("--from-log \(fromLog): \(error)") }
        }
        return try measureProfile()
    }

    /// Runs every reducer for `profileSteps` steps on the real model and data, and builds the
    /// profile from their records (mean compute and optimizer time over all runs' steps).
    func measureProfile() throws -> SimulationProfile {
        var configuration = ExperimentConfiguration()
        configuration.model = model
        configuration.dataset = dataset
        configuration.dataDirectory = dataDir
        configuration.batchSize = batchSize
        configuration.steps = profileSteps
        configuration.seed = seed
        let experiment: Experiment
        do { experiment = try Experiment(configuration) } catch { throw RuntimeError("\(error)") }
        let specifications = try parseReducerList(reducers, flag: "--reducers", seed: seed).map(\.specification)
        print("Measuring \(model) on \(experiment.dataDescription): \(profileSteps) steps of each of "
              + "\(specifications.count) reducers, \(TextFormatting.counted(profileWorkers, "in-process worker"))")
        let runs = try runThreads(workers: profileWorkers) { group in
            try specifications.map { specification in
                var session = try TrainingSession(experiment: experiment, reducer: specification, network: "10gbit",
                                                  projectedWorkers: 16)
                session.evaluates = false
                return try session.run(group: group).run
            }
        }[0]
        return try SimulationProfile(runs: runs, baseline: baseline)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()

    private func read(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RuntimeError("cannot read \(path): \(error.localizedDescription)")
        }
    }
}
