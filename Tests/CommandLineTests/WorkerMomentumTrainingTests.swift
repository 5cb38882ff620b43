import Foundation
import Testing
import Training

/// `worker-momentum` moves momentum from the optimizer to before the reducer: with the all-reduce
/// reducer that is ordinary momentum SGD (the optimizer must then run without its own, or the
/// run would apply momentum twice), in both of the optimizer's forms.
@Suite(.serialized) struct WorkerMomentumTrainingTests {
    static func losses(_ arguments: [String]) throws -> [Double] {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("run.jsonl")
        let outcome = try CommandRunner.run(["train", "--model", "mlp", "--dataset", "fashion-mnist", "--workers", "2", "--batch-size", "16",
                                             "--steps", "12", "--momentum", "0.9", "--weight-decay", "0", "--log-file", log.path] + arguments)
        #expect(outcome.status == 0, "\(outcome.all)")
        return try #require(RunLog.read(log).first).steps.map(\.loss)
    }

    @Test(arguments: [(["--nesterov"], "sgd:worker-momentum=0.9,worker-nesterov=true"), (["--no-nesterov"], "sgd:worker-momentum=0.9")])
    func allReduceWithWorkerMomentumTrainsAsOrdinaryMomentum(_ form: [String], _ reducer: String) throws {
        let ordinary = try Self.losses(form + ["--reducer", "sgd"])
        let moved = try Self.losses(form + ["--reducer", reducer])
        #expect(ordinary.count == 12 && moved.count == 12)
        for (a, b) in zip(ordinary, moved) { #expect(abs(a - b) <= 1e-4 * abs(a), "\(ordinary) vs \(moved)") }
        // The other form differs: the test can tell the two apart.
        let other = try Self.losses(form == ["--nesterov"] ? ["--no-nesterov", "--reducer", "sgd"] : ["--nesterov", "--reducer", "sgd"])
        #expect(zip(other, moved).contains { abs($0 - $1) > 1e-3 * abs($0) })
    }
}
