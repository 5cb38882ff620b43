import Collectives
import Datasets
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
@testable import Training

/// `--overlap`: buckets reduced on a communication thread while backward runs give the
/// sequential run's numbers bit for bit (the in-process all-reduce sums each element over the
/// ranks in rank order, whatever the buffer, so bucket boundaries change no sum; the other
/// reducers' work is per tensor), the reducer state survives a change of bucket layout, and an
/// error on the communication thread reaches the caller.
@Suite struct OverlappedReductionTests {
    /// An MLP with 8 parameter tensors of 2304, 64, 1024, 64, 768, 48, 192 and 16 bytes.
    static func workload() -> ClassifierWorkload {
        let model = MLP.make(inputShape: [1, 6, 6], hidden: [16, 16, 12], classes: 4, seed: 7)
        let optimizer = SGD(options: .init(momentum: 0.9, nesterov: true, weightDecay: 1e-4), schedule: .constant(0.1))
        return ClassifierWorkload(model: model, optimizer: optimizer, data: SyntheticImages(), batchSize: 8)
    }

    static let shapes = workload().parameterShapes

    struct Run {
        var steps: [DataParallelTrainer.Step]
        var parameters: [Tensor]
    }

    /// Every rank's steps and final parameters; `bucketBytes` nil runs sequentially.
    static func train(reducer specification: String, workers: Int = 3, steps: Int, bucketBytes: Double?,
                      resumeFrom checkpoint: (URL, Int)? = nil, checkpointEvery: Int = 0, directory: URL? = nil) throws -> [Run] {
        try InProcessGroup.run(workers: workers) { group in
            let work = workload()
            var reducer = try ReducerCatalog.make(try ReducerSpecification(parsing: specification), seed: 11)
            var start = 0
            if let (root, step) = checkpoint {
                start = try Checkpoint.restore(from: root, step: step, workload: work, reducer: &reducer, group: group)
            }
            var options = DataParallelTrainer.Options(totalSteps: steps, checkpointEvery: checkpointEvery, checkpointDirectory: directory)
            options.evaluates = false
            options.overlapBucketBytes = bucketBytes
            var records: [DataParallelTrainer.Step] = []
            try DataParallelTrainer(options: options).run(workload: work, reducer: &reducer, group: group, startStep: start,
                                                          onStep: { records.append($0) })
            return Run(steps: records, parameters: work.model.parameters.map(\.value))
        }
    }

    @Test func bucketsAreConsecutiveTensorsInReverseOrderClosingAtTheCapacity() {
        #expect(GradientBuckets(shapes: Self.shapes, capacityBytes: 2000).ranges == [2..<8, 0..<2])
        #expect(GradientBuckets(shapes: Self.shapes, capacityBytes: 200).ranges == [6..<8, 4..<6, 2..<4, 0..<2])
        #expect(GradientBuckets(shapes: Self.shapes, capacityBytes: 50).ranges == [6..<8, 4..<6, 3..<4, 2..<3, 1..<2, 0..<1])
        #expect(GradientBuckets(shapes: Self.shapes, capacityBytes: 1).ranges == (0..<8).reversed().map { $0..<$0 + 1 })
        #expect(GradientBuckets(shapes: Self.shapes, capacityBytes: 25 * 1_048_576).ranges == [0..<8])
    }

    /// PowerSGD (rank 2, warm start, error feedback), QSGD, Top-K with error feedback and EF21,
    /// Random-K, fp16 and SGD, over 6 steps on 3 workers: one bucket per tensor and 2 buckets
    /// give the sequential losses, parameters and payloads exactly.
    @Test(arguments: ["powersgd:rank=2", "powersgd:rank=2,start-iteration=2", "qsgd:levels=16", "topk:ratio=0.1", "topk:ratio=0.1,feedback=ef21", "randomk:ratio=0.2",
                      "fp16", "sgd"])
    func overlappedTrainingEqualsSequentialTraining(reducer: String) throws {
        let sequential = try Self.train(reducer: reducer, steps: 6, bucketBytes: nil)
        #expect(sequential[0].steps.allSatisfy { $0.wallSeconds == nil && $0.exposedCommunicationSeconds == nil })
        for capacity in [1.0, 2000] {
            let overlapped = try Self.train(reducer: reducer, steps: 6, bucketBytes: capacity)
            for rank in 0..<3 {
                #expect(overlapped[rank].parameters == sequential[rank].parameters, "\(reducer), \(capacity) B, rank \(rank)")
            }
            #expect(overlapped[0].steps.map(\.loss) == sequential[0].steps.map(\.loss))
            #expect(overlapped[0].steps.map(\.reduction.payloadBytes) == sequential[0].steps.map(\.reduction.payloadBytes))
            for step in overlapped[0].steps {
                let wall = try #require(step.wallSeconds), thread = try #require(step.communicationThreadSeconds)
                let exposed = try #require(step.exposedCommunicationSeconds)
                #expect(wall > 0 && thread > 0 && exposed >= 0 && exposed <= wall)
            }
        }
        // The runs learn: a reducer that returned zeros would leave the initial parameters.
        #expect(sequential[0].parameters != Self.workload().model.parameters.map(\.value))
    }

    /// The LSTM language model with tied weights (the shared matrix is handed out only after the
    /// embedding's backward, its last use): overlapped PowerSGD and Top-K runs, one bucket per
    /// tensor, give the sequential ones bit for bit.
    @Test(arguments: ["powersgd:rank=2", "topk:ratio=0.1"])
    func theTiedLSTMOverlapsExactly(reducer specification: String) throws {
        let corpus = try DifferentialPrivacyTests.characterCorpus()
        func run(bucketBytes: Double?) throws -> [[Tensor]] {
            try InProcessGroup.run(workers: 2) { group in
                let model = try LSTMLanguageModel(vocabularySize: corpus.vocabulary.count, embeddingSize: 8, hiddenSize: 8,
                                                  layers: 2, dropout: 0.2, tiedWeights: true, seed: 3)
                let work = LanguageModelWorkload(model: model, optimizer: SGD(options: .init(momentum: 0.9), schedule: .constant(0.5)),
                                                 corpus: corpus, batchSize: 4, bptt: 7)
                var reducer = try ReducerCatalog.make(try ReducerSpecification(parsing: specification), seed: 5)
                var options = DataParallelTrainer.Options(totalSteps: 5)
                options.evaluates = false
                options.overlapBucketBytes = bucketBytes
                try DataParallelTrainer(options: options).run(workload: work, reducer: &reducer, group: group)
                return model.parameters.map(\.value)
            }
        }
        let sequential = try run(bucketBytes: nil), overlapped = try run(bucketBytes: 1)
        #expect(overlapped == sequential)
        #expect(sequential[0] == sequential[1], "the replicas drifted apart")
    }

    /// A resume with another bucket layout (2 buckets, then 6) continues the reducer's state —
    /// PowerSGD's Q and error memory, Top-K's residuals, keyed by tensor index — exactly: the run
    /// ends where the uninterrupted sequential one does.
    @Test(arguments: ["powersgd:rank=2", "topk:ratio=0.1"])
    func aNewBucketLayoutOnResumeContinuesTheReducerState(reducer: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("overlap-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let uninterrupted = try Self.train(reducer: reducer, workers: 2, steps: 8, bucketBytes: nil)
        _ = try Self.train(reducer: reducer, workers: 2, steps: 4, bucketBytes: 2000, checkpointEvery: 4, directory: directory)
        let resumed = try Self.train(reducer: reducer, workers: 2, steps: 8, bucketBytes: 50, resumeFrom: (directory, 4))
        #expect(resumed[0].steps.map(\.loss) == Array(uninterrupted[0].steps.map(\.loss).suffix(4)))
        #expect(resumed[0].parameters == uninterrupted[0].parameters)
        #expect(resumed[1].parameters == uninterrupted[1].parameters)
    }

    /// A communicator whose collectives fail as a dead peer's would.
    final class FailingCommunicator: Communicator {
        let rank = 0, size = 2
        let traffic = TrafficLedger()
        static let failure = CollectiveError.peerFailed(rank: 1, reason: "it stopped")
        func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws { throw Self.failure }
        func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat, operation: ReduceOperation) throws {
            throw Self.failure
        }
        func allGather(_ message: [UInt8]) throws -> [[UInt8]] { throw Self.failure }
        func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws { throw Self.failure }
        func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] { throw Self.failure }
        func barrier() throws { throw Self.failure }
    }

    /// The communication thread's error is rethrown on the main thread, the same value, and the
    /// reducer is back with the caller.
    @Test func aCollectiveErrorOnTheCommunicationThreadSurfacesOnTheMainThread() throws {
        var options = DataParallelTrainer.Options(totalSteps: 3)
        options.overlapBucketBytes = 200
        var reducer: any GradientReducer = try PowerSGD(.init(rank: 2))
        #expect(throws: FailingCommunicator.failure) {
            try DataParallelTrainer(options: options).run(workload: Self.workload(), reducer: &reducer, group: FailingCommunicator())
        }
        #expect(reducer is PowerSGD)
    }

    /// A classifier workload whose backward pass is slow (it sleeps after handing out each
    /// gradient) and can fail after handing out `failAfter` gradients; it records when backward ended.
    final class SlowBackward: ForwardingWorkload, GradientStreamingWorkload {
        struct Failure: Error, Equatable {}
        let base = OverlappedReductionTests.workload()
        var failAfter: Int?
        var backwardEnd: UInt64 = 0
        var parameterShapes: [[Int]] { base.parameterShapes }
        func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int, handingOut ready: (Int, Tensor) -> Void) throws -> Float {
            var handedOut = 0
            var failed = false
            let loss = try base.computeGradients(epoch: epoch, step: step, rank: rank, workers: workers) { index, gradient in
                guard !failed else { return }
                ready(index, gradient)
                handedOut += 1
                if handedOut == failAfter { failed = true } else { Thread.sleep(forTimeInterval: 0.05) }
            }
            backwardEnd = DispatchTime.now().uptimeNanoseconds
            if failed { throw Failure() }
            return loss
        }
    }

    /// A communicator that notes when its first collective starts, and whether on the thread that made it.
    final class FirstCollectiveClock: Communicator {
        let inner: any Communicator
        var firstCall: UInt64?
        var firstCallOnMainThread: Bool?
        let mainThread = pthread_self()
        init(_ inner: any Communicator) { self.inner = inner }
        var rank: Int { inner.rank }
        var size: Int { inner.size }
        var traffic: TrafficLedger { inner.traffic }
        func note() {
            if firstCall == nil { (firstCall, firstCallOnMainThread) = (DispatchTime.now().uptimeNanoseconds, pthread_equal(pthread_self(), mainThread) != 0) }
        }
        func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws {
            note(); try inner.allReduce(buffer, operation: operation)
        }
        func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat, operation: ReduceOperation) throws {
            note(); try inner.allReduce(bits, format: format, operation: operation)
        }
        func allGather(_ message: [UInt8]) throws -> [[UInt8]] { note(); return try inner.allGather(message) }
        func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws { note(); try inner.broadcast(buffer, root: root) }
        func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] { note(); return try inner.broadcast(message, root: root) }
        func barrier() throws { note(); try inner.barrier() }
    }

    /// The first bucket is reduced on the communication thread while backward still runs (it
    /// has 7 more gradients, 0.35 s, to go), and the main thread's wait is shorter than the
    /// communication it overlapped.
    @Test func theFirstBucketIsReducedWhileBackwardRuns() throws {
        var options = DataParallelTrainer.Options(totalSteps: 1)
        options.evaluates = false
        options.overlapBucketBytes = 1
        let work = SlowBackward()
        let (start, end) = try InProcessGroup.run(workers: 1) { group -> (UInt64, Bool?) in
            let clock = FirstCollectiveClock(group)
            var reducer: any GradientReducer = UncompressedReducer()
            try DataParallelTrainer(options: options).run(workload: work, reducer: &reducer, group: clock)
            return (try #require(clock.firstCall), clock.firstCallOnMainThread)
        }[0]
        #expect(start < work.backwardEnd, "the first collective started after backward ended")
        #expect(end == false, "the first collective ran on the main thread")
    }

    /// A backward pass that fails after handing out 3 gradients (one bucket already with the
    /// communication thread) fails the run with its own error once that bucket is done: no hang,
    /// and the reducer is back with the caller.
    @Test func aBackwardErrorWaitsForTheSubmittedBucketsAndSurfaces() throws {
        var options = DataParallelTrainer.Options(totalSteps: 2)
        options.overlapBucketBytes = 200
        let reducerAfter = try InProcessGroup.run(workers: 2) { group -> Bool in
            let work = SlowBackward()
            work.failAfter = 3
            var reducer: any GradientReducer = try PowerSGD(.init(rank: 2))
            #expect(throws: SlowBackward.Failure()) {
                try DataParallelTrainer(options: options).run(workload: work, reducer: &reducer, group: group)
            }
            return reducer is PowerSGD
        }
        #expect(reducerAfter == [true, true])
    }

    /// What cannot be bucketed is refused before the first step, naming the reducer and why.
    @Test func reducersThatNeedTheWholeListAreRefused() throws {
        var options = DataParallelTrainer.Options(totalSteps: 1)
        options.overlapBucketBytes = 200
        for specification in ["topk:ratio=0.1,scope=global", "lgreco", "powersgd:group-same-shapes=true"] {
            var reducer = try ReducerCatalog.make(try ReducerSpecification(parsing: specification), seed: 1)
            let name = reducer.name
            do {
                _ = try InProcessGroup.run(workers: 1) { group in
                    try DataParallelTrainer(options: options).run(workload: Self.workload(), reducer: &reducer, group: group)
                }
                Issue.record("\(specification) was not refused")
            } catch let error as WorkerError {
                let text = "\(error)"
                #expect(text.contains("--overlap: \(name) cannot be reduced bucket by bucket"), "\(text)")
            }
        }
    }
}
