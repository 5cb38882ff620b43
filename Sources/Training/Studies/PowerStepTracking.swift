import Collectives
import Foundation
import GradientCompression

/// Trains one model with several PowerSGD variants (rank, power iterations, warm start) as
/// in-process workers and measures, on sampled steps, each compressed layer's basis P̂ against
/// the exact rank-r SVD of the averaged error-corrected gradient (`SubspaceProbe`), next to the
/// run's bytes and final accuracy. The runs behind the power-iteration and subspace-angle studies.
public struct PowerStepTracking: Sendable {
    /// One PowerSGD configuration.
    public struct Variant: Sendable, Equatable {
        public var rank: Int
        public var powerIterations: Int
        public var warmStart: Bool
        public init(rank: Int, powerIterations: Int = 1, warmStart: Bool = true) {
            self.rank = rank
            self.powerIterations = powerIterations
            self.warmStart = warmStart
        }

        public var options: PowerSGD.Options {
            PowerSGD.Options(rank: rank, warmStart: warmStart, powerIterations: powerIterations)
        }
    }

    /// One variant's run.
    public struct Run: Sendable {
        public var variant: Variant
        /// The reducer's name (`powersgd(rank=2,power-iterations=4)`).
        public var reducer: String
        public var steps: Int
        /// Payload bytes per worker per step, mean over the run.
        public var bytesPerStep: Double
        /// The test metric at the end (accuracy for classifiers).
        public var finalMetric: Double
        /// The learning rate of every step.
        public var learningRates: [Float]
        public var measurements: [SubspaceProbe.Measurement]
    }

    public var configuration: ExperimentConfiguration
    public var workers: Int
    public var variants: [Variant]
    /// Steps between measurements.
    public var probePeriod: Int

    public init(configuration: ExperimentConfiguration, workers: Int, variants: [Variant], probePeriod: Int) {
        self.configuration = configuration
        self.workers = workers
        self.variants = variants
        self.probePeriod = probePeriod
    }

    /// The training setting both studies use: the MLP (784–256–10) on Fashion-MNIST with 2
    /// workers, batch 64, learning rate 0.1, one epoch (`epochs`), or ResNet-8 with batch 32 and 0.05.
    public static func configuration(model: ExperimentConfiguration.Model, epochs: Double, schedule: ExperimentConfiguration.Schedule,
                                     seed: UInt64) -> ExperimentConfiguration {
        var c = ExperimentConfiguration()
        c.model = model
        c.dataset = .fashionMNIST
        c.batchSize = model == .mlp ? 64 : 32
        c.learningRate = model == .mlp ? 0.1 : 0.05
        c.epochs = epochs
        c.schedule = schedule
        c.seed = seed
        return c
    }

    /// Runs every variant in turn; `progress` gets each finished run.
    public func run(progress: (Run) -> Void = { _ in }) throws -> [Run] {
        let experiment = try Experiment(configuration)
        let total = try experiment.schedule(workers: workers).totalSteps
        var runs: [Run] = []
        for variant in variants {
            let probe = SubspaceProbe(workers: workers, period: probePeriod)
            let perWorker = try InProcessGroup.run(workers: workers) { group -> (bytes: Double, metric: Double, rates: [Float], name: String) in
                let workload = try experiment.makeWorkload(rank: group.rank, workers: group.size)
                var reducer: any GradientReducer = try SubspaceProbedPowerSGD(variant.options, probe: probe)
                var bytes = 0.0, metric = Double.nan, rates: [Float] = []
                try DataParallelTrainer(options: DataParallelTrainer.Options(totalSteps: total)).run(
                    workload: workload, reducer: &reducer, group: group,
                    onStep: { step in bytes += Double(step.reduction.payloadBytes); rates.append(step.learningRate) },
                    onEvaluation: { metric = $0.value })
                return (bytes / Double(max(1, total)), metric, rates, reducer.name)
            }
            let run = Run(variant: variant, reducer: perWorker[0].name, steps: total, bytesPerStep: perWorker[0].bytes,
                          finalMetric: perWorker[0].metric, learningRates: perWorker[0].rates,
                          measurements: try probe.measurements())
            progress(run)
            runs.append(run)
        }
        return runs
    }

    /// One CSV row per (run, measured layer, step): the variant, its bytes and final metric, and the measurement.
    public static func csv(_ runs: [Run]) -> String {
        let header = ["reducer", "rank", "power_iterations", "warm_start", "bytes_per_step", "final_metric", "step",
                      "learning_rate", "tensor", "shape", "largest_angle_degrees", "powersgd_relative_error",
                      "optimal_relative_error", "spectral_gap_ratio"]
        var rows: [[String]] = []
        for run in runs {
            for m in run.measurements {
                rows.append([run.reducer, String(run.variant.rank), String(run.variant.powerIterations), String(run.variant.warmStart),
                             TextFormatting.csvNumber(run.bytesPerStep), TextFormatting.csvNumber(run.finalMetric), String(m.step),
                             TextFormatting.csvNumber(Double(run.learningRates[m.step])), String(m.tensor),
                             m.shape.map(String.init).joined(separator: "x"), TextFormatting.csvNumber(m.largestAngle * 180 / .pi),
                             TextFormatting.csvNumber(m.powerRelativeError), TextFormatting.csvNumber(m.optimalRelativeError),
                             TextFormatting.csvNumber(m.spectralGapRatio)])
            }
        }
        return TextFormatting.csvTable(header: header, rows: rows)
    }

    /// ‖M̄ − P̂P̂ᵀM̄‖ / ‖M̄ − M̄_r‖ over the given measurements (all layers pooled): how many times
    /// the exact rank-r SVD's error PowerSGD's is (1: optimal).
    static func errorRatio(_ measurements: [SubspaceProbe.Measurement]) -> Double {
        let power = measurements.reduce(0.0) { $0 + $1.powerResidualSquare }
        let optimal = measurements.reduce(0.0) { $0 + $1.optimalResidualSquare }
        return optimal > 0 ? (power / optimal).squareRoot() : 1
    }

    /// The pooled relative errors ‖M̄ − P̂P̂ᵀM̄‖/‖M̄‖ and ‖M̄ − M̄_r‖/‖M̄‖ over the measurements.
    static func relativeErrors(_ measurements: [SubspaceProbe.Measurement]) -> (power: Double, optimal: Double) {
        let input = measurements.reduce(0.0) { $0 + $1.inputSquare }
        guard input > 0 else { return (0, 0) }
        return ((measurements.reduce(0.0) { $0 + $1.powerResidualSquare } / input).squareRoot(),
                (measurements.reduce(0.0) { $0 + $1.optimalResidualSquare } / input).squareRoot())
    }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.reduce(0, +) / Double(x.count) }

    static func percent(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.2f %%", 100 * x) }

    static func degrees(_ radians: Double) -> String { radians.isNaN ? "–" : String(format: "%.1f°", radians * 180 / .pi) }
}
