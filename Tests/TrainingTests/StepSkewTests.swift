import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
@testable import Training

/// The step's skew: how long the fastest worker waited for the slowest to reach the first collective.
@Suite struct StepSkewTests {
    /// A workload whose rank 1 takes `delay` longer to compute its gradients.
    final class SlowRank: ForwardingWorkload {
        let base: ClassifierWorkload
        let delay: Double
        init(_ base: ClassifierWorkload, delay: Double) { self.base = base; self.delay = delay }
        func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
            if rank == 1 { Thread.sleep(forTimeInterval: delay) }
            return try base.computeGradients(epoch: epoch, step: step, rank: rank, workers: workers)
        }
    }

    @Test func aSlowRankShowsAsSkewOnEveryWorker() throws {
        let delay = 0.04
        let skews = try InProcessGroup.run(workers: 2) { group -> [Double] in
            let work = SlowRank(DataParallelTrainerTests.workload(), delay: delay)
            var reducer: any GradientReducer = UncompressedReducer()
            var skews: [Double] = []
            try DataParallelTrainer(options: .init(totalSteps: 4)).run(workload: work, reducer: &reducer, group: group,
                                                                        onStep: { skews.append($0.skewSeconds) })
            return skews
        }
        #expect(skews[0] == skews[1], "every worker reports the same skew")
        // Rank 1 arrives `delay` late; the compute itself is well under a millisecond here.
        #expect(skews[0].allSatisfy { $0 >= 0.9 * delay && $0 < delay + 0.5 }, "\(skews[0])")
    }
}
