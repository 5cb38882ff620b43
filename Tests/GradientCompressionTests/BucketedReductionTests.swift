import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression

/// `reduce(_:tensors:of:over:)` + `finishStep()` (`--overlap`'s buckets) against the plain
/// `reduce`, for every specification of the digest list: a reducer that supports buckets gives
/// the plain outputs and payloads bit for bit over 6 steps of 3 workers, with another bucket
/// layout every step (one bucket per tensor, pairs, the whole list, ...) — so its state follows
/// the tensor index, never the bucket; one that does not refuses a bucket, naming itself.
@Suite struct BucketedReductionTests {
    static let shapes = ReducerDigestTests.shapes

    /// Bucket layouts of the 5 tensors, in reduction order (last tensors first), one per step.
    static let layouts: [[Range<Int>]] = [
        [4..<5, 3..<4, 2..<3, 1..<2, 0..<1], [2..<5, 0..<2], [0..<5], [3..<5, 1..<3, 0..<1], [4..<5, 0..<4], [1..<5, 0..<1],
    ]

    /// Worker 0's outputs and payload per step; `bucketed` uses `layouts`.
    static func run(_ text: String, bucketed: Bool) throws -> [([[Float]], Int)] {
        let specification = try ReducerSpecification(parsing: text)
        return try InProcessGroup.run(workers: 3) { group -> [([[Float]], Int)] in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            reducer.prepare(stepsPerEpoch: 2)
            var outputs: [([[Float]], Int)] = []
            for step in 0..<6 {
                var gradients = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                var payload = 0
                if bucketed {
                    for range in layouts[step] {
                        var bucket = Array(gradients[range])
                        payload += try reducer.reduce(&bucket, tensors: range, of: shapes, over: group).payloadBytes
                        gradients.replaceSubrange(range, with: bucket)
                    }
                    reducer.finishStep()
                } else {
                    payload = try reducer.reduce(&gradients, over: group).payloadBytes
                }
                outputs.append((gradients.map(\.scalars), payload))
            }
            return outputs
        }[0]
    }

    @Test(arguments: ReducerDigestTests.specifications)
    func bucketsGiveThePlainReduceOrAreRefused(_ text: String) throws {
        let reducer = try ReducerCatalog.make(try ReducerSpecification(parsing: text), seed: 3)
        switch reducer.bucketSupport {
        case .exact:
            let plain = try Self.run(text, bucketed: false), bucketed = try Self.run(text, bucketed: true)
            for step in 0..<6 {
                #expect(bucketed[step].0 == plain[step].0, "\(text), step \(step): outputs differ")
                #expect(bucketed[step].1 == plain[step].1, "\(text), step \(step): payloads differ")
            }
            #expect(plain[5].0 != LowRankFixtures.gradients(Self.shapes, rank: 0, step: 5).map(\.scalars), "\(text) reduced nothing")
        case .unsupported(let reason):
            #expect(!reason.isEmpty)
            do {
                _ = try InProcessGroup.run(workers: 1) { group in
                    var copy = reducer
                    var bucket = LowRankFixtures.gradients(Self.shapes, rank: 0, step: 0).suffix(2).map { $0 }
                    return try copy.reduce(&bucket, tensors: 3..<5, of: Self.shapes, over: group)
                }
                Issue.record("\(text) reduced a bucket")
            } catch let error as WorkerError {
                #expect(error.underlying as? GradientCompressionError
                        == .bucketingUnsupported(reducer: reducer.name, reason: reason), "\(error)")
            }
        }
    }

    /// The reducers that must stay exact under buckets are the per-tensor ones.
    @Test func theExpectedReducersSupportBuckets() throws {
        let exact = try ReducerDigestTests.specifications.filter {
            try ReducerCatalog.make(try ReducerSpecification(parsing: $0), seed: 3).bucketSupport == .exact
        }
        let refused = Set(ReducerDigestTests.specifications).subtracting(exact)
        #expect(refused == ["powersgd:group-same-shapes=true", "powersgd+:period=2", "powersgd+:period=3,error-feedback=global",
                            "lgreco:period=2,accumulate=1", "lgreco:rank=2,period=3,accumulate=2,min-rank=1,max-rank=3",
                            "svd", "svd:rank=1,error-feedback=false", "lqsgd", "lqsgd:rank=1,bits=4,alpha=5",
                            "signsgd", "signum", "signum:momentum=0.5", "topk:ratio=0.05,scope=global",
                            "dgc:density=0.1", "dgc:density=0.05,nesterov=true,warmup-epochs=0"])
    }
}
