import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression

/// The kernel paths on which `ReducerDigestTests.recorded` holds (the portable path rounds differently).
private let kernelPathsOfRecordedDigests: Set<KernelPath> = [.avx2, .avx512]

/// The outputs of every reducer on fixed inputs, bit for bit: a digest of 6 steps of 2 workers
/// (every output value, payload and relative error of worker 0) per specification, recorded
/// from the code before the PowerSGD step and the catalog were restructured, then on the AVX2
/// kernels for the reducers that use them (the tall-skinny products of the PowerSGD family, 1-bit
/// SGD's column sums), whose rounding differs from the portable path's, and for the PowerSGD
/// family again with its fused first and last passes in C (`low_rank_project_*`, FMA lanes). A refactoring that keeps
/// the arithmetic keeps every digest; one that changes a rounding changes its reducer's. Recorded
/// on the AVX2 path; the AVX-512 tall-skinny kernels keep the AVX2 lanes and give the same bits
/// (`TallSkinnyKernelTests` checks both against one reference), so the same digests hold there,
/// and the suite runs on those two paths (every machine of this kind).
/// The reducers built on LAPACK (SVD, Householder QR) round as OpenBLAS's kernel family does:
/// their digests are recorded per family (`BLASCore`), and are not checked on a family with none.
@Suite(.enabled(if: kernelPathsOfRecordedDigests.contains(KernelPath.preferred),
                "the digests are those of the AVX2 and AVX-512 kernels"))
struct ReducerDigestTests {
    static let shapes: [[Int]] = [[16, 12], [7], [8, 3, 3, 3], [20, 20], [16, 12]]

    /// Specification → FNV-1a digest (hex).
    static let recorded: [String: String] = [
        "sgd": "a94cc56437e0d39",
        "powersgd": "36a952842f63894e",
        "powersgd:rank=1": "37044ca3bbb61aa3",
        "powersgd:rank=4,error-feedback=global": "1b19173550cd1a37",
        "powersgd:error-feedback=off": "6492f4345bc526e2",
        "powersgd:warm-start=false": "afdd3fdec0d8e1fa",
        "powersgd:start-iteration=2": "1584e73c6c78262d",
        "powersgd:group-same-shapes=true": "357261795cca3e4a",
        "powersgd:epsilon=0.0001": "223eb60a1c33ebb3",
        "powersgd:rank=3,orthonormalization=householder": "3edf5aa89a29667",
        "powersgd:min-compression-rate=1": "36a952842f63894e",
        "powersgd:power-iterations=2": "a4341cb13560fe1b",
        "powersgd:rank=1,warm-start=false,power-iterations=3": "41a3d2a22f3e73c0",
        "powersgd+:period=2": "81c86fd633129b04",
        "powersgd+:period=3,error-feedback=global": "3379d51c3b4207cc",
        "lgreco:period=2,accumulate=1": "9e79653e316e71bf",
        "lgreco:rank=2,period=3,accumulate=2,min-rank=1,max-rank=3": "27ffc18c2fe2cf11",
        "svd": "ca85081ea212b4cc",
        "svd:rank=1,error-feedback=false": "4eb714849b44507d",
        "lqsgd": "e22018f9a0cf11c",
        "lqsgd:rank=1,bits=4,alpha=5": "5861f1a1ebec339a",
        "qsgd": "ca7c866503925f1b",
        "qsgd:levels=4,bucket=16,norm=max,format=fixed": "6326c8b999d4c604",
        "qsgd:feedback=ef": "24ba2cc14d96e8c1",
        "qsgd:levels=8,feedback=ef21": "a1d851f610671a8b",
        "terngrad": "87525aa3f235a94c",
        "terngrad:clip=0": "a40afef323c956bd",
        "atomo": "8abb76287270ce34",
        "atomo:budget=5": "746f74eb9522fa49",
        "atomo-coordinates": "a6cd4717bf0b3b9c",
        "atomo-coordinates:density=0.2": "7ba6799afdd9773f",
        "onebit": "87a94da6f800014b",
        "onebit:feedback=none": "f62c2fa1b0f67aa6",
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
        "powersgd:power-iterations=2", "powersgd:rank=1,warm-start=false,power-iterations=3",
        "powersgd+:period=2", "powersgd+:period=3,error-feedback=global",
        "lgreco:period=2,accumulate=1", "lgreco:rank=2,period=3,accumulate=2,min-rank=1,max-rank=3",
        "svd", "svd:rank=1,error-feedback=false", "lqsgd", "lqsgd:rank=1,bits=4,alpha=5",
        "qsgd", "qsgd:levels=4,bucket=16,norm=max,format=fixed", "qsgd:feedback=ef", "qsgd:levels=8,feedback=ef21",
        "terngrad", "terngrad:clip=0", "atomo", "atomo:budget=5", "atomo-coordinates", "atomo-coordinates:density=0.2", "onebit", "onebit:feedback=none",
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

    /// The digests of the LAPACK-based reducers per OpenBLAS kernel family, where they differ
    /// from `recorded` (Haswell and Zen, the AVX2 families, agree with it).
    static let recordedPerBLASCore: [String: [String: String]] = [
        // AVX-512 machines: Cooperlake runs the SkylakeX kernels for these routines (same digests).
        "SkylakeX": avx512LAPACKDigests, "Cooperlake": avx512LAPACKDigests,
    ]
    static let avx512LAPACKDigests: [String: String] = [
        "powersgd:rank=3,orthonormalization=householder": "388e764c928a80e5",
        "powersgd+:period=2": "2281b42371e558",
        "powersgd+:period=3,error-feedback=global": "71dcecbe6e4d7f4f",
        "svd": "2e5c220ba8dcd96d",
        "svd:rank=1,error-feedback=false": "a8da8d97dfa224fa",
        "atomo": "195c7eef32ba673e",
        "atomo:budget=5": "2337a22c2c85a730",
    ]
    static let blasCoresOfRecorded: Set<String> = ["Haswell", "Zen"]

    /// The specifications whose outputs depend on LAPACK's rounding.
    static var lapackBased: Set<String> { Set(recordedPerBLASCore.values.flatMap(\.keys)) }

    /// Whether `text`'s digest is recorded for this machine's BLAS kernel family at all.
    static func isRecordedForThisBLASCore(_ text: String) -> Bool {
        !lapackBased.contains(text) || blasCoresOfRecorded.contains(BLASCore.name)
            || recordedPerBLASCore[BLASCore.name] != nil
    }

    @Test func everyReducerGivesTheRecordedOutputs() throws {
        var report: [String] = [], unchecked: [String] = []
        for text in Self.specifications {
            let digest = try Self.digest(text)
            guard Self.isRecordedForThisBLASCore(text) else {
                unchecked.append("\"\(text)\": \"\(digest)\","); continue
            }
            if (Self.recordedPerBLASCore[BLASCore.name]?[text] ?? Self.recorded[text]) != digest { report.append("\"\(text)\": \"\(digest)\",") }
        }
        if !unchecked.isEmpty {
            print("ReducerDigestTests: no digests recorded for OpenBLAS kernel family \(BLASCore.name); not checked:\n"
                  + unchecked.joined(separator: "\n"))
        }
        #expect(report.isEmpty, "changed or unrecorded digests (OpenBLAS \(BLASCore.name)):\n\(report.joined(separator: "\n"))")
    }
}
