import Collectives
import Dispatch
import Foundation
import GradientCompression
import LinearAlgebra

/// The data-parallel training loop of one worker: the paper's Algorithm 2.
///
/// Every worker runs `run` with its own communicator, workload (model replica, optimizer,
/// data shard) and reducer, in lock step:
/// 1. compute the local gradients on this worker's batch;
/// 2. the reducer replaces them by the group's (approximate) average — identical everywhere;
/// 3. the optimizer applies momentum, weight decay and the learning rate to that average;
/// 4. two tiny all-reduces share the step's loss and timings (mean loss, slowest worker).
/// Because steps 2–3 give every worker the same update, replicas that start identical stay
/// identical, up to the buffers a workload keeps locally (batch-norm running statistics).
public struct DataParallelTrainer {
    public struct Options: Sendable {
        /// Stop after this many optimizer steps in all (counted from step 0, resumes included).
        public var totalSteps: Int
        /// Evaluate every this many steps (and after the last); 0 means only at the end.
        public var evaluateEvery: Int
        /// Whether to evaluate at all. Off for profiling runs that only need step records.
        public var evaluates = true
        /// Write a checkpoint every this many steps into `checkpointDirectory`; 0 means never
        /// (the state is still saved for inspection when training stops on a non-finite value).
        public var checkpointEvery: Int
        public var checkpointDirectory: URL?
        /// Checkpoints to keep: after writing one, older `step-N` directories beyond this many are
        /// removed (`Checkpoint.prune`); 0 keeps them all.
        public var keepCheckpoints = 3
        /// The settings that fix the run's trajectory, recorded in every checkpoint so that a
        /// resume with other settings is refused (`TrainingSession.trajectorySettings`).
        public var settings: [String: String] = [:]
        /// With a bucket capacity in bytes: reduce the gradients in buckets on a communication
        /// thread while backward runs (`--overlap`, `--bucket-mb`; `OverlappedReduction`). Not a
        /// trajectory setting: every layout gives the same result, so a resume may change it.
        public var overlapBucketBytes: Double?

        public init(totalSteps: Int, evaluateEvery: Int = 0, checkpointEvery: Int = 0, checkpointDirectory: URL? = nil) {
            self.totalSteps = totalSteps
            self.evaluateEvery = evaluateEvery
            self.checkpointEvery = checkpointEvery
            self.checkpointDirectory = checkpointDirectory
        }
    }

    /// What one step did, as every worker agrees on it (loss averaged, times of the slowest worker).
    public struct Step: Sendable {
        public var step: Int
        public var epoch: Int
        public var loss: Double
        public var learningRate: Float
        /// Forward + backward CPU time, slowest worker.
        public var computeSeconds: Double
        /// Reducer time outside collectives (compression, decompression, error feedback), slowest worker.
        public var compressionSeconds: Double
        /// Reducer time inside collectives, slowest worker.
        public var communicationSeconds: Double
        /// Optimizer step, slowest worker.
        public var optimizerSeconds: Double
        /// How long the fastest worker waited for the slowest to reach the step's first collective
        /// (longest minus shortest wall time of the gradient computation).
        public var skewSeconds: Double
        /// This worker's reducer statistics (bytes, ratio, collectives).
        public var reduction: ReductionStats
        /// Under DP-SGD: the ε spent after this step (`DifferentiallyPrivateWorkload`).
        public var epsilon: Double?
        /// With `--overlap` (nil without), slowest worker each: the step's wall time (forward to
        /// the end of the optimizer), the communication thread's time reducing the buckets, and
        /// the exposed communication — how long the main thread waited for that thread after
        /// backward. Communication hidden behind backward = communication-thread − exposed time.
        public var wallSeconds: Double?
        public var communicationThreadSeconds: Double?
        public var exposedCommunicationSeconds: Double?
    }

    /// The result of an evaluation, the same on every worker.
    public struct Evaluation: Sendable {
        public var step: Int
        public var epoch: Int
        public var metric: EvaluationPart.Metric
        /// Fraction correct, or perplexity.
        public var value: Double
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Runs from `startStep` (0, or the step a checkpoint was written at) to `options.totalSteps`.
    /// `onStep` and `onEvaluation` are called on every worker with identical values.
    public func run(workload: Workload, reducer: inout any GradientReducer, group: any Communicator,
                    startStep: Int = 0,
                    onStep: (Step) throws -> Void = { _ in },
                    onEvaluation: (Evaluation) throws -> Void = { _ in }) throws {
        let stepsPerEpoch = workload.stepsPerEpoch(workers: group.size)
        guard stepsPerEpoch > 0 else {
            throw TrainingError.emptyEpoch(workers: group.size)
        }
        if reducer.appliesMomentum && workload.optimizerMomentum != 0 {
            throw TrainingError.doubleMomentum(reducer: reducer.name, optimizerMomentum: workload.optimizerMomentum)
        }
        reducer.prepare(stepsPerEpoch: stepsPerEpoch)
        // Local SGD: the reducer runs once a round, on the pseudo-gradients (`LocalSGDWorkload`).
        let local = workload as? LocalSGDWorkload
        if local != nil, options.overlapBucketBytes != nil { throw TrainingError.overlapWithLocalSGD }
        var evaluationDue = false
        let overlap = try options.overlapBucketBytes.map {
            try OverlappedReduction(bucketBytes: $0, workload: workload, reducer: reducer, rank: group.rank)
        }
        var step = startStep
        while step < options.totalSteps {
            let epoch = step / stepsPerEpoch
            group.traffic.beginStep()

            // 1. Local gradients. Compute time is this thread's CPU time: what the step costs on a
            // core of its own, whether or not other workers share this machine's cores.
            let c0 = threadCPUSeconds(), w0 = now()
            let loss: Float, c1: Double, w1: Double, gradients: [Tensor]
            var reduction: ReductionStats
            var overlapTiming: OverlappedReduction.Timing?
            if let overlap {
                // 1–2 at once: the buckets are reduced while backward runs.
                let result = try overlap.step(workload: workload, reducer: &reducer, group: group, epoch: epoch,
                                              step: step % stepsPerEpoch)
                (loss, gradients, reduction, overlapTiming) = (result.loss, result.gradients, result.reduction, result.timing)
                (c1, w1) = (result.timing.backwardEndCPU, result.timing.backwardEndWall)
            } else {
                loss = try workload.computeGradients(epoch: epoch, step: step % stepsPerEpoch,
                                                     rank: group.rank, workers: group.size)
                (c1, w1) = (threadCPUSeconds(), now())
                // 2. The reducer's average (identical on every worker afterwards).
                //    Under local SGD the inner step uses the worker's own gradients.
                var reduced = workload.takeGradients()
                reduction = local == nil ? try reducer.reduce(&reduced, over: group) : ReductionStats()
                gradients = reduced
            }
            workload.gradients = gradients
            // 3. Optimizer on the average.
            let t2 = now()
            var finiteGradients = gradients.allSatisfy { $0.withUnsafeBufferPointer { allFinite($0) } }
            let learningRate = finiteGradients ? try workload.applyGradients() : .nan
            let t3 = now()
            let endsRound = local?.endsRound(step: step, totalSteps: options.totalSteps) ?? true
            if let local, endsRound, finiteGradients {
                // The round's end: average Δ_w = θ₀ − θ_w through the reducer, then the outer step.
                var delta = local.pseudoGradients()
                reduction = try reducer.reduce(&delta, over: group)
                finiteGradients = delta.allSatisfy { $0.withUnsafeBufferPointer { allFinite($0) } }
                if finiteGradients { local.applyOuterStep(delta) }
            }

            // 4. Agree on the step's numbers: mean loss and non-finite count, slowest times.
            var sums: [Float] = [loss, (loss.isFinite && finiteGradients) ? 0 : 1]
            try group.allReduce(&sums, operation: .sum)
            // The last two give the longest and (negated) shortest wall time from the end of the
            // previous step's agreement, which all ranks leave together, to the reducer's first
            // collective: their difference is how long the fastest rank waited for the slowest.
            var slowest: [Float] = [Float(c1 - c0), Float(reduction.computeSeconds),
                                    Float(reduction.communicationSeconds), Float(t3 - t2),
                                    Float(w1 - w0), -Float(w1 - w0)]
            if let overlapTiming {
                slowest += [Float(t3 - w0), Float(overlapTiming.communicationThreadSeconds), Float(overlapTiming.exposedSeconds)]
            }
            try group.allReduce(&slowest, operation: .max)
            if sums[1] > 0 {
                // The reducer (and, for a non-finite loss, the optimizer) already took this step:
                // the state is not step `step`'s, so it goes beside the checkpoints, never over one.
                let directory = try writeCheckpoint(step: step, workload: workload, reducer: reducer, group: group,
                                                    inspection: true)
                throw TrainingError.nonFinite(step: step, loss: Double(sums[0]) / Double(group.size), checkpoint: directory)
            }
            var record = Step(step: step, epoch: epoch, loss: Double(sums[0]) / Double(group.size),
                              learningRate: learningRate, computeSeconds: Double(slowest[0]),
                              compressionSeconds: Double(slowest[1]), communicationSeconds: Double(slowest[2]),
                              optimizerSeconds: Double(slowest[3]), skewSeconds: Double(slowest[4] + slowest[5]),
                              reduction: reduction, epsilon: (workload as? DifferentiallyPrivateWorkload)?.account.epsilon)
            if overlapTiming != nil {
                (record.wallSeconds, record.communicationThreadSeconds, record.exposedCommunicationSeconds)
                    = (Double(slowest[6]), Double(slowest[7]), Double(slowest[8]))
            }
            try onStep(record)
            step += 1
            // Replicas differ inside a local-SGD round: an evaluation falling there waits for its end.
            evaluationDue = evaluationDue || options.evaluateEvery > 0 && step % options.evaluateEvery == 0
            if options.evaluates && (evaluationDue && endsRound || step == options.totalSteps) {
                evaluationDue = false
                try onEvaluation(evaluate(workload: workload, group: group, step: step, epoch: (step - 1) / stepsPerEpoch))
            }
            if options.checkpointEvery > 0 && step % options.checkpointEvery == 0 {
                _ = try writeCheckpoint(step: step, workload: workload, reducer: reducer, group: group)
            }
        }
    }

    /// Every worker evaluates its share of the test set; the sums are all-reduced.
    public func evaluate(workload: Workload, group: any Communicator, step: Int, epoch: Int) throws -> Evaluation {
        let part = try workload.evaluate(rank: group.rank, workers: group.size)
        var totals: [Float] = [Float(part.sum), Float(part.count)]
        try group.allReduce(&totals, operation: .sum)
        let mean = Double(totals[0]) / max(1, Double(totals[1]))
        let value = part.metric == .accuracy ? mean : exp(mean)
        return Evaluation(step: step, epoch: epoch, metric: part.metric, value: value)
    }

    /// Rank `group.rank`'s checkpoint after `step` steps, or with `inspection` the state of a
    /// failed step (`Checkpoint.save`); nil without a checkpoint directory.
    @discardableResult
    func writeCheckpoint(step: Int, workload: Workload, reducer: any GradientReducer,
                         group: any Communicator, inspection: Bool = false) throws -> URL? {
        guard let root = options.checkpointDirectory else { return nil }
        return try Checkpoint.save(into: root, step: step, totalSteps: options.totalSteps, settings: options.settings,
                                   keep: options.keepCheckpoints, workload: workload, reducer: reducer, group: group,
                                   inspection: inspection)
    }

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}

/// CPU seconds used by the calling thread.
public func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
    // Σ 0·x is 0 for finite x and NaN for NaN or ±Inf: one vectorized pass.
    var acc = SIMD16<Float>()
    var i = 0
    let n = values.count
    guard let p = values.baseAddress else { return true }
    while i + 16 <= n { acc += 0 * UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self); i += 16 }
    var tail: Float = 0
    while i < n { tail += 0 * p[i]; i += 1 }
    return (acc.sum() + tail) == 0
}
