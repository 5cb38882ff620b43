import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression

/// The outputs of every reducer on fixed inputs, bit for bit: a digest of 6 steps of 2 workers
/// (every output value, payload and relative error of worker 0) per specification, recorded
/// from the code before the PowerSGD step and the catalog were restructured. A refactoring that
/// keeps the arithmetic keeps every digest; one that changes a rounding changes its reducer's.
@Suite struct ReducerDigestTests {
    static let shapes: [[Int]] = [[16, 12], [7], [8, 3, 3, 3], [20, 20], [16, 12]]

    /// Specification → FNV-1a digest (hex).
    static let recorded: [String: String] = [
        "sgd": "a94cc56437e0d39",
        "powersgd": "53f4e5236dd70a14",
        "powersgd:rank=1": "6789a9ab191689c5",
        "powersgd:rank=4,error-feedback=global": "259fcfc3c01ec452",
        "powersgd:error-feedback=off": "f8ed2798b19c9c50",
        "powersgd:warm-start=false": "8aaaaf14ba8c163b",
        "powersgd:start-iteration=2": "7e9a2aaabe39397",
        "powersgd:group-same-shapes=true": "53f4e5236dd70a14",
        "powersgd:epsilon=0.0001": "ee8a8321c9149f30",
        "powersgd:rank=3,orthonormalization=householder": "70b4c8320aef3d33",
        "powersgd:min-compression-rate=1": "53f4e5236dd70a14",
        "powersgd+:period=2": "6e212f69d63b5f7e",
        "powersgd+:period=3,error-feedback=global": "d207bf454f69c57b",
        "lgreco:period=2,accumulate=1": "89f1bdf894772dda",
        "lgreco:rank=2,period=3,accumulate=2,min-rank=1,max-rank=3": "5048646b28433d25",
        "svd": "ca85081ea212b4cc",
        "svd:rank=1,error-feedback=false": "4eb714849b44507d",
        "lqsgd": "97ad25e7bfc80737",
        "lqsgd:rank=1,bits=4,alpha=5": "4b3e009402bdd532",
        "qsgd": "ca7c866503925f1b",
        "qsgd:levels=4,bucket=16,norm=max,format=fixed": "6326c8b999d4c604",
        "qsgd:feedback=ef": "24ba2cc14d96e8c1",
        "qsgd:levels=8,feedback=ef21": "a1d851f610671a8b",
        "terngrad": "87525aa3f235a94c",
        "terngrad:clip=0": "a40afef323c956bd",
        "atomo": "8abb76287270ce34",
        "atomo:budget=5": "746f74eb9522fa49",
        "onebit": "a44316307bc84ac",
        "onebit:feedback=none": "9423c2acca397c77",
        "signsgd": "8dd32eeb66659fdd",
        "signum": "e57bd373761c4498",
        "signum:momentum=0.5": "3503ba61878b7db0",
        "scaled-sign": "ca909859bc4d44c3",
        "scaled-sign:feedback=ef21": "911a143f41eb1636",
        "topk": "29663243a0e701de",
        "topk:ratio=0.1,selection=sampled": "bf028b97234dd6bd",
        "topk:ratio=0.05,scope=global": "885335feea356bb6",
        "topk:ratio=0.1,feedback=none": "d3b4ae3e20809a19",
        "randomk:ratio=0.2": "972d2e0a8b3e3563",
        "randomk:ratio=0.2,unbiased=true": "4551fabbfc00fc22",
        "dgc:density=0.1": "462f9bfa254726b0",
        "dgc:density=0.05,nesterov=true,warmup-epochs=0": "cb4c983bc67a5d1b",
        "fp16": "b9ba5454a8ee01ba",
        "bf16": "b60ade1aeb4c8124",
    ]

    static let specifications = [
        "sgd",
        "powersgd", "powersgd:rank=1", "powersgd:rank=4,error-feedback=global", "powersgd:error-feedback=off",
        "powersgd:warm-start=false", "powersgd:start-iteration=2", "powersgd:group-same-shapes=true",
        "powersgd:epsilon=0.0001", "powersgd:rank=3,orthonormalization=householder", "powersgd:min-compression-rate=1",
        "powersgd+:period=2", "powersgd+:period=3,error-feedback=global",
        "lgreco:period=2,accumulate=1", "lgreco:rank=2,period=3,accumulate=2,min-rank=1,max-rank=3",
        "svd", "svd:rank=1,error-feedback=false", "lqsgd", "lqsgd:rank=1,bits=4,alpha=5",
        "qsgd", "qsgd:levels=4,bucket=16,norm=max,format=fixed", "qsgd:feedback=ef", "qsgd:levels=8,feedback=ef21",
        "terngrad", "terngrad:clip=0", "atomo", "atomo:budget=5", "onebit", "onebit:feedback=none",
        "signsgd", "signum", "signum:momentum=0.5", "scaled-sign", "scaled-sign:feedback=ef21",
        "topk", "topk:ratio=0.1,selection=sampled", "topk:ratio=0.05,scope=global", "topk:ratio=0.1,feedback=none",
        "randomk:ratio=0.2", "randomk:ratio=0.2,unbiased=true", "dgc:density=0.1", "dgc:density=0.05,nesterov=true,warmup-epochs=0",
        "fp16", "bf16",
    ]

    static func digest(_ text: String) throws -> String {
        let specification = try ReducerSpecification(parsing: text)
        let perWorker = try InProcessGroup.run(workers: 2) { group -> UInt64 in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            reducer.prepare(stepsPerEpoch: 2)
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            func mix(_ word: UInt64) {
                for byte in 0..<8 { hash = (hash ^ ((word >> (8 * UInt64(byte))) & 0xff)) &* 0x100_0000_01b3 }
            }
            for step in 0..<6 {
                var gradients = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                let stats = try reducer.reduce(&gradients, over: group)
                for tensor in gradients { for x in tensor.scalars { mix(UInt64(x.bitPattern)) } }
                mix(UInt64(stats.payloadBytes))
                mix((stats.relativeError ?? -1).bitPattern)
            }
            return hash
        }
        return String(perWorker[0], radix: 16)
    }

    @Test func everyReducerGivesTheRecordedOutputs() throws {
        var report: [String] = []
        for text in Self.specifications {
            let digest = try Self.digest(text)
            if Self.recorded[text] != digest { report.append("\"\(text)\": \"\(digest)\",") }
        }
        #expect(report.isEmpty, "changed or unrecorded digests:\n\(report.joined(separator: "\n"))")
    }
}
