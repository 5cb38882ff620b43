import Testing
import Dispatch
import LinearAlgebra
@testable import NeuralNetworks
import TestSupport

/// Workers run as threads, each with its own model: training two models at the same time must give
/// the same bits as training them one after the other (no shared mutable state in the engine).
@Suite struct ConcurrencyTests {
    /// One result slot per worker, so the two threads never write the same object.
    final class Slot: @unchecked Sendable { var bits: [UInt32] = [] }

    static func train(seed: UInt64, intraOpThreads: Int,
                      convolution: ConvolutionImplementation = .default) throws -> [UInt32] {
        let model = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 10, baseWidth: 4, seed: seed,
                                     threads: intraOpThreads)
        model.useConvolutions(convolution)
        let sgd = SGD(options: .init(momentum: 0.9), schedule: .constant(0.05))
        for step in 0..<3 {
            model.zeroGradients()
            _ = try model.lossAndGradients(input: normalTensor([4, 1, 10, 10], seed: 900 + UInt64(step), stream: 77), labels: [0, 1, 2, 1])
            sgd.apply(to: model.parameters)
        }
        return model.parameters.flatMap { $0.value.scalars.map(\.bitPattern) }
    }

    @Test func concurrentWorkersMatchSequentialOnes() throws {
        let sequential = [try Self.train(seed: 1, intraOpThreads: 1), try Self.train(seed: 2, intraOpThreads: 1)]
        let slots = [Slot(), Slot()]
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            slots[worker].bits = (try? Self.train(seed: UInt64(worker + 1), intraOpThreads: 1)) ?? []
        }
        #expect(slots.map(\.bits) == sequential)
        // oneDNN partitions ∂W's reduction over the batch by thread count: reproducible at each
        // count, and within rounding of one thread.
        let twoThreads = try Self.train(seed: 1, intraOpThreads: 2)
        #expect(try Self.train(seed: 1, intraOpThreads: 2) == twoThreads)
        let worst = zip(twoThreads, sequential[0]).map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) }.max() ?? 1
        #expect(worst < 1e-4, "2 threads differ from 1 by \(worst)")
    }

    @Test func im2colIntraOpThreadsGiveTheSameBits() throws {
        // Its intra-op threads split disjoint work only (the products are BLAS's): the same bits as one thread.
        #expect(try Self.train(seed: 1, intraOpThreads: 2, convolution: .im2col)
                == Self.train(seed: 1, intraOpThreads: 1, convolution: .im2col))
    }
}
