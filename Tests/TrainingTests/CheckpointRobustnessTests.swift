import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import Testing
@testable import Training

/// The checkpoint reader fed mutated files, like the decoders in `RobustnessTests`: it restores
/// or throws, never traps or allocates without bound. The name matches `make test-asan`'s filter,
/// so these also run under the address sanitizer.
@Suite struct CheckpointRobustnessTests {
    /// Bit flips, byte overwrites, truncations and extensions of `bytes`.
    static func mutations(of bytes: [UInt8], count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = Xoshiro256(seed: seed)
        return (0..<count).map { _ in
            var m = bytes
            switch rng.next() % 4 {
            case 0:
                for _ in 0 ..< 1 + Int(rng.next() % 4) { m[Int(rng.next() % UInt64(m.count))] ^= UInt8(1 << (rng.next() % 8)) }
            case 1:
                for _ in 0 ..< 1 + Int(rng.next() % 8) { m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 2:
                m = Array(m.prefix(Int(rng.next() % UInt64(m.count))))
            default:
                m += (0 ..< 1 + Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            return m
        }
    }

    /// Rank 0's checkpoint bytes after 3 steps on one worker with `reducer`.
    static func checkpoint(_ reducer: String) throws -> [UInt8] {
        try InProcessGroup.run(workers: 1) { group -> [UInt8] in
            var r = try ReducerCatalog.make(try ReducerSpecification(parsing: reducer), seed: 5)
            let work = DataParallelTrainerTests.workload(momentum: r.appliesMomentum ? 0 : 0.9)
            try DataParallelTrainer(options: .init(totalSteps: 3)).run(workload: work, reducer: &r, group: group)
            return Checkpoint.encode(step: 3, totalSteps: 3, settings: ["seed": "7"], workload: work, reducer: r, workers: 1)
        }[0]
    }

    static let reducers = ["powersgd:rank=2", "qsgd:levels=16,bucket=64", "dgc:density=0.05", "sgd"]

    /// Mutated payloads under a valid checksum reach the parser: every one restores or throws
    /// `TrainingError`, and the parser does reject some.
    @Test(arguments: reducers)
    func mutatedPayloadsRestoreOrThrow(reducer text: String) throws {
        let sealed = try Self.checkpoint(text)
        let payload = Array(sealed.dropLast(4))
        try InProcessGroup.run(workers: 1) { _ in
            var r = try ReducerCatalog.make(try ReducerSpecification(parsing: text), seed: 5)
            let work = DataParallelTrainerTests.workload(momentum: r.appliesMomentum ? 0 : 0.9)
            var thrown = 0, restored = 0
            for m in Self.mutations(of: payload, count: 2_500, seed: 11) {
                let resealed: [UInt8] = m + withUnsafeBytes(of: CRC32C.checksum(m).littleEndian) { Array($0) }
                do {
                    _ = try Checkpoint.decode(resealed, file: "fuzz.state", step: 3, workload: work, reducer: &r,
                                              workers: 1, settings: nil)
                    restored += 1
                } catch is TrainingError {
                    thrown += 1
                }
            }
            #expect(thrown + restored == 2_500)
            #expect(thrown > 0, "\(text): no mutation was detected at all")
        }
    }

    /// The same mutations without a fresh checksum are all refused before anything is read.
    @Test func everyMutationOfASealedCheckpointIsRefused() throws {
        let sealed = try Self.checkpoint("powersgd:rank=2")
        try InProcessGroup.run(workers: 1) { _ in
            let work = DataParallelTrainerTests.workload()
            var r: any GradientReducer = try ReducerCatalog.make(try ReducerSpecification(parsing: "powersgd:rank=2"), seed: 5)
            for m in Self.mutations(of: sealed, count: 2_000, seed: 12) where m != sealed {
                #expect(throws: TrainingError.self) {
                    _ = try Checkpoint.decode(m, file: "fuzz.state", step: 3, workload: work, reducer: &r, workers: 1, settings: nil)
                }
            }
        }
    }

    /// A low-rank reducer's saved layout with extents whose product overflows: an error, not a trap.
    @Test func hugeExtentsInAReducerLayoutThrow() throws {
        var r = try ReducerCatalog.make(try ReducerSpecification(parsing: "powersgd:rank=2"), seed: 5)
        for extents in [[1 << 40, 1 << 40], [Int.max, 3], [-5, 4], [0, 1 << 62, 1 << 62]] {
            var w = StateWriter()
            w.write("powersgd"); w.write(r.name); w.write(0); w.write(true)
            w.write(1); w.write(extents.count); for e in extents { w.write(e) }
            w.write([Float]()); w.write([Float]()); w.write(false); w.write([Float]()); w.write([Float]())
            var reader = StateReader(w.bytes)
            #expect(throws: StateArchiveError.self, "\(extents)") { try r.restoreState(from: &reader) }
        }
    }
}
