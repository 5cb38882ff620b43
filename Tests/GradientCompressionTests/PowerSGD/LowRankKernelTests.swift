import LinearAlgebra
import Testing
@testable import GradientCompression

/// PowerSGD's fused passes (`LowRankKernels.project`, `.expand`): the AVX2 and AVX-512 kernels
/// against the scalar references that repeat their order of operations, bit for bit (so the two
/// instruction sets agree with each other), and the portable Swift loops against the same
/// references to rounding.
@Suite struct LowRankKernelTests {
    /// (rows, columns): columns below, at and past 16 and not multiples of it, and none; rows odd
    /// and even (the kernels take two rows per pass in `project`, four or two in `expand`).
    static let shapes: [(Int, Int)] = [(1, 1), (7, 37), (5, 64), (9, 300), (4, 16), (2, 2309), (3, 0)]
    static let ranks = Array(1...LowRankKernels.vectorMaximumRank)

    /// The three forms of the first pass: no error feedback, error feedback, and error feedback
    /// with last step's pending residual.
    enum Form: CaseIterable { case gradientOnly, withError, withCorrection }

    struct Projection: Equatable { var error: [UInt32]?; var p: [UInt32]; var squares: UInt64 }

    static func inputs(_ n: Int, _ m: Int, rank r: Int, seed: UInt64) -> (g: [Float], e: [Float], qt: [Float], cp: [Float], cqt: [Float]) {
        func normal(_ count: Int, _ stream: UInt64) -> [Float] {
            Philox(seed: seed, stream: stream).normalTensor(shape: [count]).scalars
        }
        return (normal(n * m, 0), normal(n * m, 1), normal(r * m, 2), normal(n * r, 3), normal(r * m, 4))
    }

    static func project(_ n: Int, _ m: Int, rank r: Int, form: Form, kernel: KernelPath) -> (Projection, reference: Projection) {
        let x = inputs(n, m, rank: r, seed: UInt64(31 * n + m))
        var e = x.e, p = [Float](repeating: .nan, count: n * r)
        let squares = x.cp.withUnsafeBufferPointer { cp in x.cqt.withUnsafeBufferPointer { cqt in
            let correction = form == .withCorrection
                ? LowRankKernels.Correction(pHat: UnsafeMutablePointer(mutating: cp.baseAddress!), qt: UnsafeMutablePointer(mutating: cqt.baseAddress!))
                : nil
            return e.withUnsafeMutableBufferPointer { eb in p.withUnsafeMutableBufferPointer { pb in
                LowRankKernels.project(gradient: x.g, error: form == .gradientOnly ? nil : eb.baseAddress!, correction: correction,
                                       rows: n, columns: m, qt: x.qt, rank: r, into: pb.baseAddress!, kernel: kernel)
            } }
        } }
        let reference = LowRankKernels.referenceProject(gradient: x.g, error: form == .gradientOnly ? nil : x.e,
                                                        correction: form == .withCorrection ? (x.cp, x.cqt) : nil,
                                                        rows: n, columns: m, qt: x.qt, rank: r)
        return (Projection(error: form == .gradientOnly ? nil : e.map(\.bitPattern), p: p.map(\.bitPattern), squares: squares.bitPattern),
                Projection(error: reference.error?.map(\.bitPattern), p: reference.p.map(\.bitPattern), squares: reference.squares.bitPattern))
    }

    /// The output at `offset` floats into a buffer (so that streamed rows start unaligned and
    /// the kernel splits them around their 64-byte aligned middle).
    static func expand(_ n: Int, _ m: Int, rank r: Int, streaming: Bool, offset: Int, kernel: KernelPath) -> [UInt32] {
        let x = inputs(n, m, rank: r, seed: UInt64(17 * n + m))
        var buffer = [Float](repeating: .nan, count: n * m + offset)
        buffer.withUnsafeMutableBufferPointer { out in
            LowRankKernels.expand(pHat: x.cp, rank: r, qt: x.qt, rows: n, columns: m, into: out.baseAddress! + offset,
                                  streaming: streaming, kernel: kernel)
        }
        return buffer[offset...].map(\.bitPattern)
    }

    static func referenceExpand(_ n: Int, _ m: Int, rank r: Int) -> [UInt32] {
        let x = inputs(n, m, rank: r, seed: UInt64(17 * n + m))
        return LowRankKernels.referenceExpand(pHat: x.cp, rank: r, qt: x.qt, rows: n, columns: m).map(\.bitPattern)
    }

    static func expectReferenceBits(rank r: Int, kernel: KernelPath) {
        for (n, m) in shapes {
            for form in Form.allCases {
                let (result, reference) = project(n, m, rank: r, form: form, kernel: kernel)
                #expect(result == reference, "\(kernel) project \(n)×\(m) rank \(r) \(form)")
            }
            let reference = referenceExpand(n, m, rank: r)
            for streaming in [false, true] {
                for offset in [0, 1, 8, 13] {
                    #expect(expand(n, m, rank: r, streaming: streaming, offset: offset, kernel: kernel) == reference,
                            "\(kernel) expand \(n)×\(m) rank \(r) streaming \(streaming) offset \(offset)")
                }
            }
        }
    }

    @Test(.enabled(if: KernelPath.preferred.hasAVX2, "the CPU has no AVX2/FMA"), arguments: ranks)
    func avx2KernelsEqualTheirReferenceBitForBit(rank r: Int) {
        Self.expectReferenceBits(rank: r, kernel: .avx2)
    }

    @Test(.enabled(if: KernelPath.preferred == .avx512, "the CPU has no AVX-512F/VL"), arguments: ranks)
    func avx512KernelsEqualTheirReferenceBitForBit(rank r: Int) {
        Self.expectReferenceBits(rank: r, kernel: .avx512)
    }

    /// The portable loops multiply and add separately, in 16 lanes for the element-wise part and
    /// 8 for the dot products: they agree with the FMA references to a few roundings of the
    /// largest partial sum, 1e-5 of the largest |value| for these sums of at most 2,309 products.
    @Test(arguments: [1, 4, 8])
    func portableLoopsAgreeWithTheReferenceToRounding(rank r: Int) {
        func close(_ a: [UInt32], _ b: [UInt32]) -> Bool {
            let x = a.map(Float.init(bitPattern:)), y = b.map(Float.init(bitPattern:))
            let scale = max(1, y.map(abs).max() ?? 0)
            return x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * scale }
        }
        for (n, m) in Self.shapes {
            for form in Form.allCases {
                let (result, reference) = Self.project(n, m, rank: r, form: form, kernel: .portable)
                #expect(close(result.p, reference.p), "project P \(n)×\(m) rank \(r) \(form)")
                #expect(close(result.error ?? [], reference.error ?? []), "project E \(n)×\(m) rank \(r) \(form)")
                let (s, t) = (Double(bitPattern: result.squares), Double(bitPattern: reference.squares))
                #expect(abs(s - t) <= 1e-5 * t, "project ‖M‖² \(n)×\(m) rank \(r) \(form)")
            }
            #expect(close(Self.expand(n, m, rank: r, streaming: false, offset: 0, kernel: .portable), Self.referenceExpand(n, m, rank: r)),
                    "expand \(n)×\(m) rank \(r)")
        }
    }

    /// `project`'s P is the vector M·Q of the tall-skinny products with one block per row (the
    /// header says so): M·Q of the M it wrote, through `TallSkinny.multiply` on the same path.
    @Test(.enabled(if: KernelPath.preferred.hasAVX2, "the CPU has no AVX2/FMA"))
    func projectionEqualsTheTallSkinnyProductOfItsInput() {
        for (n, m) in Self.shapes where m > 0 && 4 * 4 * m <= 256 << 10 {
            let x = Self.inputs(n, m, rank: 4, seed: 5)
            var e = x.e, p = [Float](repeating: .nan, count: n * 4), product = p
            e.withUnsafeMutableBufferPointer { eb in p.withUnsafeMutableBufferPointer { pb in
                _ = LowRankKernels.project(gradient: x.g, error: eb.baseAddress!, rows: n, columns: m, qt: x.qt, rank: 4, into: pb.baseAddress!)
            } }
            var q = [Float](repeating: 0, count: m * 4)
            for j in 0..<m { for k in 0..<4 { q[j * 4 + k] = x.qt[k * m + j] } }
            product.withUnsafeMutableBufferPointer { TallSkinny.multiply(e, rows: n, columns: m, by: q, rank: 4, into: $0.baseAddress!) }
            #expect(p.map(\.bitPattern) == product.map(\.bitPattern), "\(n)×\(m)")
            #expect(e != x.e, "the pass wrote M = G + E into the error buffer")
        }
    }
}
