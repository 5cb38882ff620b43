import ArgumentParser
import Foundation
import LinearAlgebra

/// `powersgd bench linalg`: the machine's memory and BLAS limits, and our tall-skinny
/// products against them (issue 2). Run without OPENBLAS_NUM_THREADS=1 so the
/// 2-thread sgemm figure can use both cores.
struct BenchLinalg: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "linalg",
        abstract: "Copy bandwidth, sgemm GFLOP/s (1 and 2 threads) and the tall-skinny products of PowerSGD.")

    @Flag(help: "Print JSON (the default output is also JSON; the flag is accepted for symmetry).")
    var json = false

    @Option(help: "Timed repetitions per measurement (median is reported).")
    var repeats = 5

    struct Sgemm: Codable { var size: Int; var threads: Int; var gflops: Double }
    struct TallSkinnyResult: Codable {
        var product: String; var rows: Int; var columns: Int; var rank: Int; var threads: Int
        var ms: Double; var gbPerSecondOfM: Double; var ratioToCopyBandwidth: Double
        /// GB/s of M over the read bandwidth of the same run: the bound of a product that reads M once.
        var ratioToReadBandwidth: Double
        /// `KernelPath.preferred`: "avx512", "avx2" or "portable".
        var kernelPath: String
        var blasMs: Double; var blasGBPerSecondOfM: Double
    }
    struct Report: Codable {
        var copyBandwidthGBs: Double
        var readBandwidthGBs: Double
        var sgemm: [Sgemm]
        var tallSkinny: [TallSkinnyResult]
        var notes: String
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
    }

    func run() throws {
        let copy = Benchmark.copyBandwidth(), read = Benchmark.readBandwidth()
        let startThreads = BLASThreads.count
        var gemms: [Sgemm] = []
        for size in [1024, 2048] {
            let a = Philox(seed: 1).normalTensor(shape: [size, size])
            let b = Philox(seed: 2).normalTensor(shape: [size, size])
            var c = Tensor(shape: [size, size])
            for threads in [1, 2] {
                BLASThreads.count = threads
                let s = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    Benchmark.medianSeconds(repeats: repeats) {
                        sgemm(.none, .none, m: size, n: size, k: size, a: pa.baseAddress!, lda: size,
                              b: pb.baseAddress!, ldb: size, c: pc.baseAddress!, ldc: size)
                    } } } }
                gemms.append(Sgemm(size: size, threads: min(threads, max(1, startThreads)), gflops: 2 * pow(Double(size), 3) / s / 1e9))
            }
        }
        BLASThreads.count = 1
        let n = 4096, m = 4608
        let matrix = Philox(seed: 3).normalTensor(shape: [n, m])
        let bytesOfM = Double(n * m * 4)
        var thin: [TallSkinnyResult] = []
        for r in [1, 2, 4] {
            let q = Philox(seed: 4).normalTensor(shape: [m, r]), p = Philox(seed: 5).normalTensor(shape: [n, r])
            var outP = Tensor(shape: [n, r]), outQ = Tensor(shape: [m, r])
            matrix.withUnsafeBufferPointer { pm in q.withUnsafeBufferPointer { pq in p.withUnsafeBufferPointer { pp in
                outP.withUnsafeMutableBufferPointer { po in outQ.withUnsafeMutableBufferPointer { oq in
                    let ours = Benchmark.medianSeconds(repeats: repeats) {
                        TallSkinny.multiply(pm.baseAddress!, rows: n, columns: m, by: pq.baseAddress!, rank: r, into: po.baseAddress!)
                    }
                    let blas = Benchmark.medianSeconds(repeats: repeats) {
                        sgemm(.none, .none, m: n, n: r, k: m, a: pm.baseAddress!, lda: m, b: pq.baseAddress!, ldb: r,
                              c: po.baseAddress!, ldc: r)
                    }
                    let oursT = Benchmark.medianSeconds(repeats: repeats) {
                        TallSkinny.multiplyTransposed(pm.baseAddress!, rows: n, columns: m, by: pp.baseAddress!, rank: r, into: oq.baseAddress!)
                    }
                    let blasT = Benchmark.medianSeconds(repeats: repeats) {
                        sgemm(.transposed, .none, m: m, n: r, k: n, a: pm.baseAddress!, lda: m, b: pp.baseAddress!, ldb: r,
                              c: oq.baseAddress!, ldc: r)
                    }
                    for (name, t, tb) in [("M·Q", ours, blas), ("Mᵀ·P", oursT, blasT)] {
                        let gbs = bytesOfM / t / 1e9
                        thin.append(TallSkinnyResult(product: name, rows: n, columns: m, rank: r, threads: 1,
                                                     ms: t * 1e3, gbPerSecondOfM: gbs, ratioToCopyBandwidth: gbs / copy,
                                                     ratioToReadBandwidth: gbs / read, kernelPath: KernelPath.preferred.rawValue,
                                                     blasMs: tb * 1e3, blasGBPerSecondOfM: bytesOfM / tb / 1e9))
                    }
                } } } } }
        }
        BLASThreads.count = startThreads
        let report = Report(copyBandwidthGBs: copy, readBandwidthGBs: read, sgemm: gemms, tallSkinny: thin,
                            notes: "copy bandwidth counts bytes read + written by one thread on a 64 MB buffer; "
                                 + "tall-skinny GB/s counts the bytes of M read once; ratioToReadBandwidth divides it by readBandwidthGBs "
                                 + "(one thread summing 64 MB with the hardware prefetcher only: kernels that also prefetch in software "
                                 + "can exceed 1); kernelPath is the tall-skinny kernels' path; blas* is cblas_sgemm on the same product; "
                                 + "sgemm threads are capped by OPENBLAS_NUM_THREADS at process start (\(startThreads) here)")
        try BenchmarkReport.print(report)
    }
}
