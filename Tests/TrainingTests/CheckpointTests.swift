import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
@testable import Training

/// Checkpoints as a reliability engineer would break them: flipped bytes, files from another run,
/// a run that diverged, a changed configuration, a garbage `latest` pointer, stray temp files.
@Suite struct CheckpointTests {
    static func scratch(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    }

    static func reducer(_ text: String) -> () -> any GradientReducer {
        { try! ReducerCatalog.make(try! ReducerSpecification(parsing: text), seed: 5) }
    }

    /// A stop at step k and a resume from its checkpoint give the uninterrupted run's losses,
    /// final parameters and per-step bytes, for reducers whose state matters: PowerSGD's error
    /// memory and warm-start Q, QSGD's generator position, DGC's momentum and accumulation.
    @Test(arguments: ["powersgd:rank=2,warm-start=true,error-feedback=true", "qsgd:levels=16,bucket=64", "dgc:density=0.05"])
    func resumeIsBitIdenticalWithStatefulReducers(reducer text: String) throws {
        let directory = Self.scratch("resume")
        defer { try? FileManager.default.removeItem(at: directory) }
        let full = try RecordedRun.train(workers: 2, steps: 8, reducer: Self.reducer(text))
        _ = try RecordedRun.train(workers: 2, steps: 5, reducer: Self.reducer(text), checkpointEvery: 5, directory: directory)
        let resumed = try RecordedRun.train(workers: 2, steps: 8, reducer: Self.reducer(text), resumeFrom: (directory, 5))
        #expect(resumed[0].losses == Array(full[0].losses.suffix(3)))
        #expect(resumed[0].payloadBytes == Array(full[0].payloadBytes.suffix(3)),
                "a resumed step must carry the uninterrupted step's collectives, no more")
        #expect(resumed[0].collectiveKinds == Array(full[0].collectiveKinds.suffix(3)))
        for rank in 0..<2 {
            #expect(resumed[rank].parameters == full[rank].parameters, "rank \(rank)")
        }
    }

    /// Four flipped bytes in the parameter payload of rank 0's file: refused, naming the file.
    @Test func aCorruptedCheckpointIsRefusedNamingTheFile() throws {
        let directory = Self.scratch("corrupt")
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try RecordedRun.train(workers: 2, steps: 4, reducer: { UncompressedReducer() }, checkpointEvery: 4, directory: directory)
        let file = directory.appendingPathComponent("step-4/rank-0.state")
        var bytes = [UInt8](try Data(contentsOf: file))
        for i in 0..<4 { bytes[bytes.count / 2 + i] ^= 0x5a }
        try Data(bytes).write(to: file)
        do {
            _ = try RecordedRun.train(workers: 2, steps: 6, reducer: { UncompressedReducer() }, resumeFrom: (directory, 4))
            Issue.record("a corrupted checkpoint was accepted")
        } catch let error as WorkerError {
            #expect("\(error.underlying)".contains(file.path), "\(error.underlying)")
            #expect("\(error.underlying)".contains("checksum"), "\(error.underlying)")
        }
    }

    /// Rank 1's file replaced by one from another run (another learning rate, same step): every
    /// file is intact, but the replicas would diverge, so the resume stops and names the rank.
    @Test func ranksThatRestoredDifferentModelsAreNamed() throws {
        let a = Self.scratch("run-a"), b = Self.scratch("run-b")
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        _ = try RecordedRun.train(workers: 2, steps: 3, reducer: { UncompressedReducer() }, checkpointEvery: 3, directory: a)
        _ = try RecordedRun.train(workers: 2, steps: 3, reducer: { UncompressedReducer() }, checkpointEvery: 3, directory: b,
                                  learningRate: 0.05)
        let target = a.appendingPathComponent("step-3/rank-1.state")
        try FileManager.default.removeItem(at: target)
        try FileManager.default.copyItem(at: b.appendingPathComponent("step-3/rank-1.state"), to: target)
        do {
            _ = try RecordedRun.train(workers: 2, steps: 5, reducer: { UncompressedReducer() }, resumeFrom: (a, 3))
            Issue.record("replicas that restored different models went on training")
        } catch let error as WorkerError {
            let message = "\(error.underlying)"
            #expect(message.contains("rank 1"), "\(message)")
            #expect(message.contains("step 3"), "\(message)")
        }
    }

    /// A reducer that puts a NaN into its input and output at one step, which poisons its inner
    /// reducer's state (PowerSGD's error memory): what a diverging run leaves behind.
    struct PoisonAt: GradientReducer {
        var inner: any GradientReducer
        let step: Int
        var calls = 0
        var name: String { inner.name }
        mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
            defer { calls += 1 }
            guard calls == step else { return try inner.reduce(&gradients, over: group) }
            gradients[0].scalars[0] = .nan
            let stats = try inner.reduce(&gradients, over: group)
            gradients[0].scalars[0] = .nan  // the stop, whatever the inner reducer made of its input
            return stats
        }
        func saveState(to archive: inout StateWriter) { inner.saveState(to: &archive) }
        mutating func restoreState(from archive: inout StateReader) throws { try inner.restoreState(from: &archive) }
    }

    /// Checkpoint at step 4, NaN at step 4: the inspection state goes to `nonfinite-step-4`, the
    /// good `step-4` and `latest` stay, and resuming continues like the run that never diverged.
    @Test func resumeAfterANonFiniteStopContinuesFromTheLastGoodCheckpoint() throws {
        let directory = Self.scratch("nonfinite")
        defer { try? FileManager.default.removeItem(at: directory) }
        let powerSGD = Self.reducer("powersgd:rank=1")
        let clean = try RecordedRun.train(workers: 2, steps: 7, reducer: powerSGD)
        do {
            _ = try RecordedRun.train(workers: 2, steps: 7, reducer: { PoisonAt(inner: powerSGD(), step: 4) },
                                      checkpointEvery: 2, directory: directory)
            Issue.record("a NaN gradient did not stop training")
        } catch let error as WorkerError {
            let message = "\(error.underlying)"
            #expect(message.contains("step 4"), "\(message)")
            #expect(message.contains(directory.appendingPathComponent("nonfinite-step-4").path), "\(message)")
        }
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nonfinite-step-4/rank-0.state").path))
        #expect(try Checkpoint.latestStep(in: directory) == 4)
        let resumed = try RecordedRun.train(workers: 2, steps: 7, reducer: powerSGD, resumeFrom: (directory, 4))
        #expect(resumed[0].losses == Array(clean[0].losses.suffix(3)))
        #expect(resumed[0].parameters == clean[0].parameters)
    }
}

/// A run of `DataParallelTrainer` on the synthetic images, with what the checkpoint tests compare.
enum RecordedRun {
    struct Outcome {
        var losses: [Double]
        var payloadBytes: [Int]
        var collectiveKinds: [[CollectiveKind]]
        var parameters: [Tensor]
    }

    static func train(workers: Int, steps: Int, reducer: @escaping () -> any GradientReducer,
                      checkpointEvery: Int = 0, directory: URL? = nil, resumeFrom checkpoint: (URL, Int)? = nil,
                      learningRate: Float = 0.1) throws -> [Outcome] {
        try InProcessGroup.run(workers: workers) { group in
            var r = reducer()
            // Reducers that carry momentum (DGC) get an optimizer without it, as the session builds.
            let work = DataParallelTrainerTests.workload(learningRate: learningRate, momentum: r.appliesMomentum ? 0 : 0.9)
            var start = 0
            if let (root, step) = checkpoint {
                start = try Checkpoint.restore(from: root, step: step, workload: work, reducer: &r, group: group)
            }
            let trainer = DataParallelTrainer(options: .init(totalSteps: steps, checkpointEvery: checkpointEvery,
                                                              checkpointDirectory: directory))
            var outcome = Outcome(losses: [], payloadBytes: [], collectiveKinds: [], parameters: [])
            try trainer.run(workload: work, reducer: &r, group: group, startStep: start, onStep: {
                outcome.losses.append($0.loss)
                outcome.payloadBytes.append($0.reduction.payloadBytes)
                outcome.collectiveKinds.append($0.reduction.collectives.map(\.kind))
            })
            outcome.parameters = work.model.parameters.map(\.value)
            return outcome
        }
    }
}
