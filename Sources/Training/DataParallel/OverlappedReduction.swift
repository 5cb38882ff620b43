import Collectives
import Dispatch
import GradientCompression
import LinearAlgebra

/// Gradient reduction overlapped with the backward pass (`--overlap`): PyTorch DDP's and
/// Horovod's scheme (Li et al., "PyTorch Distributed", VLDB 2020; Sergeev & Del Balso 2018).
///
/// One step on one worker:
/// 1. the main thread runs forward and backward; backward hands out each gradient as soon as it
///    is final (`GradientStreamingWorkload`, reverse parameter order);
/// 2. when the gradients of the next bucket (`GradientBuckets`, reduced last tensors first) are
///    all there, the bucket goes to this worker's `CommunicationThread`, which reduces it with
///    `GradientReducer.reduce(_:tensors:of:over:)` while backward continues;
/// 3. after backward the main thread joins the communication thread — the wait is the step's
///    *exposed* communication — ends the reducer's step (`finishStep`) and hands the reduced
///    list to the optimizer.
/// Buckets are submitted in one fixed order, so every worker issues the same collectives in the
/// same order. The communicator is used by one thread at a time: the main thread issues no
/// collective between the step's start and the join (MPI needs `MPI_THREAD_SERIALIZED`).
/// An error of a bucket's reduction is rethrown by the join on the main thread; an error of
/// backward waits for the buckets already submitted before it propagates, so the reducer is
/// never used by two threads.
final class OverlappedReduction {
    /// What one overlapped step measured on this worker, beside the reducer's statistics.
    struct Timing {
        /// Thread CPU and wall clock when backward ended.
        var backwardEndCPU: Double
        var backwardEndWall: Double
        /// Wall time the communication thread spent reducing this step's buckets.
        var communicationThreadSeconds: Double
        /// Wall time the main thread waited for the communication thread after backward.
        var exposedSeconds: Double
    }

    let bucketBytes: Double
    private let thread: CommunicationThread
    private var buckets: (shapes: [[Int]], layout: GradientBuckets)?

    /// Refuses a workload or reducer that cannot overlap, naming it and why.
    init(bucketBytes: Double, workload: Workload, reducer: any GradientReducer, rank: Int) throws {
        guard workload is GradientStreamingWorkload else {
            let reason = workload is DifferentiallyPrivateWorkload
                ? DifferentiallyPrivateWorkload.overlapRefusal
                : "this workload's backward pass does not hand out gradients as they become final"
            throw TrainingError.overlapUnsupported(reason)
        }
        if case let .unsupported(reason) = reducer.bucketSupport {
            throw TrainingError.overlapUnsupported("\(reducer.name) cannot be reduced bucket by bucket: \(reason)")
        }
        precondition(bucketBytes > 0, "bucket capacity \(bucketBytes) must be positive")
        self.bucketBytes = bucketBytes
        thread = CommunicationThread(name: "communication-\(rank)")
    }

    deinit { thread.stop() }

    /// The buckets of this list (kept while the shapes stay the same).
    func buckets(for shapes: [[Int]]) -> GradientBuckets {
        if let buckets, buckets.shapes == shapes { return buckets.layout }
        let layout = GradientBuckets(shapes: shapes, capacityBytes: bucketBytes)
        buckets = (shapes, layout)
        return layout
    }

    /// Steps 1–3 of the type's documentation: returns the loss, the reduced gradients (in
    /// parameter order), the reducer's statistics of all buckets and the step's timing.
    func step(workload: Workload, reducer: inout any GradientReducer, group: any Communicator,
              epoch: Int, step: Int) throws -> (loss: Float, gradients: [Tensor], reduction: ReductionStats, timing: Timing) {
        let workload = workload as! GradientStreamingWorkload
        let shapes = workload.parameterShapes
        let layout = buckets(for: shapes)
        let owner = layout.bucketOfTensor
        let ranges = layout.ranges
        // The reducer moves into a box the communication thread mutates; the main thread does
        // not touch it until the join (a copy would share PowerSGD's workspace and copy it).
        let box = ReducerBox()
        swap(&box.reducer, &reducer)
        defer { swap(&box.reducer, &reducer) }
        let results = BucketResults(count: ranges.count)
        var staged = [Tensor?](repeating: nil, count: shapes.count)
        var missing = ranges.map(\.count)
        var submitted = 0
        func submitReadyBuckets() {
            while submitted < ranges.count && missing[submitted] == 0 {
                let bucket = submitted, range = ranges[bucket]
                let parcel = BucketResults.Parcel(range.map { index in
                    defer { staged[index] = nil }
                    return staged[index]!
                })
                thread.submit {
                    let start = DispatchTime.now().uptimeNanoseconds
                    var tensors = parcel.take()
                    let stats = try box.reducer.reduce(&tensors, tensors: range, of: shapes, over: group)
                    results.store(bucket, tensors: tensors, stats: stats,
                                  seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                }
                submitted += 1
            }
        }
        let loss: Float
        do {
            loss = try workload.computeGradients(epoch: epoch, step: step, rank: group.rank, workers: group.size) { index, gradient in
                precondition(staged[index] == nil && missing[owner[index]] > 0, "gradient \(index) handed out twice")
                staged[index] = gradient
                missing[owner[index]] -= 1
                submitReadyBuckets()
            }
        } catch {
            try? thread.join()
            throw error
        }
        let backwardEndCPU = threadCPUSeconds(), backwardEnd = DispatchTime.now().uptimeNanoseconds
        guard submitted == ranges.count else {
            try? thread.join()
            throw TrainingError.overlapUnsupported("the backward pass handed out \(missing.reduce(0, +)) gradients too few")
        }
        try thread.join()
        let exposed = Double(DispatchTime.now().uptimeNanoseconds - backwardEnd) * 1e-9
        box.reducer.finishStep()
        var gradients = [Tensor](repeating: Tensor(shape: [0]), count: shapes.count)
        for (bucket, range) in ranges.enumerated() {
            var tensors = results.take(bucket)
            for (k, index) in range.enumerated() { swap(&gradients[index], &tensors[k]) }
        }
        return (loss, gradients, ReductionStats.combining(results.stats),
                Timing(backwardEndCPU: backwardEndCPU, backwardEndWall: Double(backwardEnd) * 1e-9,
                       communicationThreadSeconds: results.seconds.reduce(0, +), exposedSeconds: exposed))
    }
}

/// The reducer while the communication thread owns it.
private final class ReducerBox {
    var reducer: any GradientReducer = UncompressedReducer()
}

/// The buckets' reduced tensors and statistics, written by the communication thread and read
/// by the main thread after the join.
private final class BucketResults {
    /// A bucket's tensors on their way to the communication thread, held by nothing else.
    final class Parcel {
        private var tensors: [Tensor]
        init(_ tensors: [Tensor]) { self.tensors = tensors }
        func take() -> [Tensor] {
            var moved: [Tensor] = []
            swap(&moved, &tensors)
            return moved
        }
    }

    private var tensors: [[Tensor]]
    private(set) var stats: [ReductionStats]
    private(set) var seconds: [Double]

    init(count: Int) {
        tensors = Array(repeating: [], count: count)
        stats = Array(repeating: ReductionStats(), count: count)
        seconds = Array(repeating: 0, count: count)
    }

    func store(_ bucket: Int, tensors reduced: [Tensor], stats bucketStats: ReductionStats, seconds elapsed: Double) {
        tensors[bucket] = reduced
        stats[bucket] = bucketStats
        seconds[bucket] = elapsed
    }

    func take(_ bucket: Int) -> [Tensor] {
        var moved: [Tensor] = []
        swap(&moved, &tensors[bucket])
        return moved
    }
}
