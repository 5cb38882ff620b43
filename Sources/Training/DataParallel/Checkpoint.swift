import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The checkpoint layout, writer and reader.
///
/// `<root>/step-<N>/rank-<r>.state` holds rank r's state after N steps, as `StateWriter.sealed`
/// bytes (the stream and its CRC-32C): a header (format, step, workers, the run's length and the
/// settings that fix its trajectory), then the workload's state and the reducer's. `<root>/latest`
/// names the newest complete checkpoint; it moves only after every rank has written its file, and
/// never when training stops on a non-finite value (that state goes to `nonfinite-step-<N>`).
public enum Checkpoint {
    static let magic = "powersgd-checkpoint-v2"
    static let olderMagic = "powersgd-checkpoint-v1"

    public static func directory(_ root: URL, step: Int) -> URL {
        root.appendingPathComponent("step-\(step)")
    }

    /// Where the state of a run that stopped on a non-finite value at `step` is kept for inspection.
    public static func inspectionDirectory(_ root: URL, step: Int) -> URL {
        root.appendingPathComponent("nonfinite-step-\(step)")
    }

    static func file(_ directory: URL, rank: Int) -> URL {
        directory.appendingPathComponent("rank-\(rank).state")
    }

    static func latestFile(_ root: URL) -> URL { root.appendingPathComponent("latest") }

    /// The name a file is written under before it is renamed into place. Fixed, not random: a
    /// write cut short leaves one known file, which the next write replaces and a start removes.
    static func temporaryFile(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".partial")
    }

    /// The step of the newest complete checkpoint under `root`, or nil if there is no `latest` file.
    /// - Throws: `TrainingError.checkpoint` naming the file when it cannot be read or does not hold
    ///   a step number (a `latest` written by something else, or damaged).
    public static func latestStep(in root: URL) throws -> Int? {
        let url = latestFile(root)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingError.checkpoint("cannot read \(url.path): \(error.localizedDescription)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let step = Int(text), step >= 0 else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            throw TrainingError.checkpoint("\(url.path) is garbage: it holds '\(shown)' where a step number was expected "
                                           + "(remove it, or point it at a step-N directory by writing N)")
        }
        return step
    }

    // MARK: Writing

    /// Writes `<root>/step-<N>/rank-<r>.state` for every rank: the workload's state (model,
    /// buffers, optimizer) and the reducer's (error feedback, warm-start factors, plans). Ranks
    /// write their own file because reducer state and local buffers differ between workers. Rank 0
    /// then moves `latest` and keeps the newest `keep` checkpoints (0: all). With `inspection`, the
    /// state goes to `nonfinite-step-<N>` instead and `latest` stays where it was. Returns the
    /// directory written.
    static func save(into root: URL, step: Int, totalSteps: Int, settings: [String: String], keep: Int,
                     workload: Workload, reducer: any GradientReducer, group: any Communicator,
                     inspection: Bool = false) throws -> URL {
        let directory = inspection ? inspectionDirectory(root, step: step) : self.directory(root, step: step)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError.checkpoint("cannot create \(directory.path): \(error.localizedDescription)")
        }
        let bytes = encode(step: step, totalSteps: totalSteps, settings: settings, workload: workload, reducer: reducer,
                           workers: group.size)
        try writeAtomically(bytes, to: file(directory, rank: group.rank))
        try group.barrier()  // every rank's file exists before anyone reports the checkpoint
        if group.rank == 0 && !inspection {
            try setLatest(root, step: step)
            prune(root, newest: step, keep: keep)
        }
        return directory
    }

    /// The sealed bytes of rank `group.rank`'s checkpoint after `step` steps.
    static func encode(step: Int, totalSteps: Int, settings: [String: String], workload: Workload,
                       reducer: any GradientReducer, workers: Int) -> [UInt8] {
        var writer = StateWriter()
        writer.write(magic)
        writer.write(step)
        writer.write(workers)
        writer.write(totalSteps)
        writer.write(settings.count)
        for key in settings.keys.sorted() { writer.write(key); writer.write(settings[key]!) }
        workload.saveState(to: &writer)
        writer.write(reducer.name)
        reducer.saveState(to: &writer)
        return writer.sealed
    }

    /// Writes `bytes` to `url` through a temporary file and a rename, so a reader sees the old
    /// file or the whole new one, never a part; the data reach the disk before the rename.
    static func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
        let temporary = temporaryFile(for: url)
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw fileError("cannot create", temporary) }
        var written = 0
        let ok = bytes.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let n = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return fsync(descriptor) == 0
        }
        guard ok else {
            let error = fileError("cannot write", temporary)
            close(descriptor)
            unlink(temporary.path)
            throw error
        }
        close(descriptor)
        guard rename(temporary.path, url.path) == 0 else {
            let error = fileError("cannot rename into place", url)
            unlink(temporary.path)
            throw error
        }
    }

    private static func fileError(_ what: String, _ url: URL) -> TrainingError {
        .checkpointFile(action: what, path: url.path, reason: String(cString: strerror(errno)))
    }

    /// Moves `latest` to `step` (rank 0, after every rank wrote its file).
    static func setLatest(_ root: URL, step: Int) throws {
        try writeAtomically(Array("\(step)\n".utf8), to: latestFile(root))
    }

    /// Removes `step-<M>` directories with M below `newest`, keeping the `keep − 1` largest such M
    /// (so `keep` checkpoints remain with `step-<newest>`). Directories above `newest` (another
    /// run's) and inspection states are left alone; `keep` 0 keeps everything.
    static func prune(_ root: URL, newest: Int, keep: Int) {
        guard keep > 0, let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return }
        let older = names.compactMap { name -> Int? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)), step < newest else { return nil }
            return step
        }.sorted(by: >)
        for step in older.dropFirst(keep - 1) {
            try? FileManager.default.removeItem(at: directory(root, step: step))
        }
    }

    /// Removes what interrupted writes of rank `rank` left under `root`: its temporary files, and
    /// (rank 0) the temporary `latest` and the `.nosync` files of Foundation's atomic writes.
    static func removeTemporaryFiles(in root: URL, rank: Int) {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: root.path) else { return }
        let mine = "." + file(root, rank: rank).lastPathComponent + ".partial"
        func isStray(_ name: String) -> Bool {
            name == mine || (rank == 0 && (name == ".latest.partial" || name.hasPrefix(".") && name.contains(".nosync")))
        }
        var directories = [root]
        for name in names where name.hasPrefix("step-") || name.hasPrefix("nonfinite-step-") {
            directories.append(root.appendingPathComponent(name))
        }
        for directory in directories {
            for name in (try? manager.contentsOfDirectory(atPath: directory.path)) ?? [] where isStray(name) {
                try? manager.removeItem(at: directory.appendingPathComponent(name))
            }
        }
    }

    // MARK: Reading

    /// What a checkpoint says about the run that wrote it.
    public struct Header: Sendable, Equatable {
        public var step: Int
        public var workers: Int
        /// The run's length in steps when it wrote the checkpoint.
        public var totalSteps: Int
        /// The settings that fix the trajectory (see `TrainingSession.trajectorySettings`).
        public var settings: [String: String]
    }

    /// Restores this rank's workload and reducer from `<root>/step-<N>/rank-<r>.state` and
    /// returns the step to continue from. Then every rank compares a digest of the step and the
    /// state replicas share (parameters, optimizer) with the others, so a file from another run
    /// or another step is refused before the replicas diverge.
    ///
    /// - Throws: `TrainingError.checkpoint` naming the file (unreadable, corrupt, foreign);
    ///   `.configurationChanged` when it was written by another worker count or, given
    ///   `settings`, other settings; `.replicasDiffer` naming the ranks that restored another state.
    public static func restore(from root: URL, step: Int, workload: Workload, reducer: inout any GradientReducer,
                               group: any Communicator, settings: [String: String]? = nil) throws -> Int {
        try restoreHeader(from: root, step: step, workload: workload, reducer: &reducer, group: group, settings: settings).step
    }

    static func restoreHeader(from root: URL, step: Int, workload: Workload, reducer: inout any GradientReducer,
                              group: any Communicator, settings: [String: String]?) throws -> Header {
        let file = Checkpoint.file(directory(root, step: step), rank: group.rank)
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw TrainingError.checkpoint("cannot read \(file.path): \(error.localizedDescription)")
        }
        let header = try decode([UInt8](data), file: file.path, step: step, workload: workload, reducer: &reducer,
                                workers: group.size, settings: settings)
        try verifyReplicas(step: step, workload: workload, group: group)
        return header
    }

    /// Reads sealed checkpoint bytes into `workload` and `reducer`; `file` names them in errors.
    static func decode(_ sealed: [UInt8], file: String, step: Int, workload: Workload, reducer: inout any GradientReducer,
                       workers: Int, settings: [String: String]?) throws -> Header {
        var reader: StateReader
        do { reader = try StateReader(unsealing: sealed) } catch {
            var plain = StateReader(sealed)
            if (try? plain.readString()) == olderMagic {
                throw TrainingError.checkpoint("\(file) is in the format of an older version (\(olderMagic), without a checksum), "
                                               + "which this version does not read; start a new run in another --checkpoint-dir")
            }
            throw TrainingError.checkpoint("\(file): \(error); refusing to restore it")
        }
        do {
            try reader.expect(magic)
            let saved = try reader.readInt(), savedWorkers = try reader.readInt(), totalSteps = try reader.readInt()
            let count = try reader.readInt()
            guard (0...10_000).contains(count) else {
                throw StateArchiveError.unexpectedValue(expected: "settings count", offset: reader.offset)
            }
            var savedSettings: [String: String] = [:]
            for _ in 0..<count { let key = try reader.readString(); savedSettings[key] = try reader.readString() }
            guard saved == step else { throw TrainingError.checkpoint("\(file) holds step \(saved), expected \(step)") }
            var differences: [TrainingError.SettingDifference] = []
            if savedWorkers != workers {
                differences.append(.init(key: "workers", saved: "\(savedWorkers)", current: "\(workers)"))
            }
            if let settings {
                for key in Set(settings.keys).union(savedSettings.keys).sorted() where settings[key] != savedSettings[key] {
                    differences.append(.init(key: key, saved: savedSettings[key] ?? "(not recorded)",
                                             current: settings[key] ?? "(not set)"))
                }
            }
            guard differences.isEmpty else { throw TrainingError.configurationChanged(file: file, differences: differences) }
            try workload.restoreState(from: &reader)
            try reader.expect(reducer.name)
            try reducer.restoreState(from: &reader)
            guard reader.isAtEnd else { throw TrainingError.checkpoint("\(file) has trailing bytes") }
            return Header(step: saved, workers: savedWorkers, totalSteps: totalSteps, settings: savedSettings)
        } catch let error as StateArchiveError {
            throw TrainingError.checkpoint("\(file): \(error)")
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError.checkpoint("\(file): \(error)")
        }
    }

    /// Every rank's (step, CRC-32C of the replicated state), all-gathered and compared with rank 0's.
    static func verifyReplicas(step: Int, workload: Workload, group: any Communicator) throws {
        var writer = StateWriter()
        workload.saveReplicatedState(to: &writer)
        var message: [UInt8] = []
        withUnsafeBytes(of: UInt64(step).littleEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.checksum(writer.bytes).littleEndian) { message.append(contentsOf: $0) }
        let all = try group.allGather(message)
        func restoredStep(_ bytes: [UInt8]) -> Int? {
            guard bytes.count == 12 else { return nil }
            return Int(truncatingIfNeeded: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) })
        }
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            throw TrainingError.replicasDiffer(step: step, ranks: differing,
                                               steps: differing.map { restoredStep(all[$0]) ?? -1 },
                                               referenceStep: restoredStep(all[0]) ?? -1)
        }
    }
}
