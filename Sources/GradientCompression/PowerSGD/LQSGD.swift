import Collectives
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// LQ-SGD (Li et al. 2025, ALGORITHMS.md §6): PowerSGD whose P and Q factors travel
/// log-quantized to `bits` bits. The paper's quantizer details are UNCONFIRMED; our choices:
///
/// - **Normalization:** per factor block (one matrix's P_w or Q_w), scale s = max|x|, sent as
///   one fp32; x/s ∈ [−1, 1] (s = 0 sends all zeros).
/// - **Log codec:** q = sign(x)·ln(1 + α|x|/s)/ln(1 + α), inverse
///   x = s·sign(q)·((1+α)^{|q|} − 1)/α, α = `alpha` (default 10): more levels near 0,
///   where factor entries concentrate.
/// - **Bit mapping:** the integer c = round(q·L), L = 2^{b−1} − 1 levels per sign, zero exact,
///   stored as c + L in b bits, bit-packed (b ∈ 2…8).
/// - **Rounding:** to nearest (deterministic). Error feedback absorbs the quantization
///   error of Q (below); P's quantization only perturbs the shared subspace.
/// - **Communication:** quantize, then **all-gather** the codes, and every worker
///   dequantizes and sums in rank order. Summing log codes is not linear (§6, DERIVED), so
///   all-reducing codes would be wrong; all-reducing dequantized floats would send 32 bits.
///   Received bytes therefore grow with W, as for every all-gather scheme.
/// - **Error feedback (variant B):** E_w ← M_w − P̂·D(C(Q_w))ᵀ, the worker's input minus its
///   own dequantized contribution, so Σ_w E_w = Σ_w M_w − W·P̂Q̄ᵀ and mass is conserved.
/// - **Input policy (docs/compressors.md):** a NaN or ±Inf in a compressed gradient (or in its
///   error-corrected M = G + E, e.g. by overflow) reaches every entry of its row of P = M·Q
///   (NaN·q, ∞·0 and ∞ − ∞ are NaN), so the encoder's check of the factor blocks throws
///   `CompressorError.nonFiniteInput` naming the tensor, before anything is sent. The error
///   memory then holds that M (what the trainer's inspection checkpoint shows).
/// Payload per compressed matrix per step: ⌈b·n·r/8⌉ + ⌈b·m·r/8⌉ + 8 bytes.
public struct LQSGD: GradientReducer {
    public let rank: Int
    public let bits: Int
    public let alpha: Float
    public let seed: UInt64
    public let minCompressionRate: Double

    var layout: MatrixLayout?
    var step = 0
    var q: [Float] = []
    var error: [Float] = []
    var agreementChecked = false

    public init(rank: Int = 2, bits: Int = 8, alpha: Float = 10, seed: UInt64 = 0, minCompressionRate: Double = 2) throws {
        guard rank >= 1 else { throw GradientCompressionError.invalidOption("lqsgd rank must be at least 1 (got \(rank))") }
        guard (2...8).contains(bits) else { throw GradientCompressionError.invalidOption("lqsgd bits must be in 2...8 (got \(bits))") }
        guard alpha.isFinite, alpha > 0 else { throw GradientCompressionError.invalidOption("lqsgd alpha must be positive (got \(alpha))") }
        self.rank = rank
        self.bits = bits
        self.alpha = alpha
        self.seed = seed
        self.minCompressionRate = minCompressionRate
    }

    public var name: String {
        ReducerSpecification.reducerName("lqsgd", [("rank", "\(rank)"), ("bits", "\(bits)")] + (alpha == 10 ? [] : [("alpha", "\(alpha)")]))
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        if layout == nil { layout = MatrixLayout(shapes: gradients.map(\.shape), ranks: [rank], minCompressionRate: minCompressionRate) }
        if !agreementChecked { try MatrixLayout.checkAgreement(gradients.map(\.shape), over: group); agreementChecked = true }
        let layout = self.layout!
        try layout.validate(gradients)
        defer { step += 1 }
        if error.count != layout.compressedCount { error = [Float](repeating: 0, count: layout.compressedCount) }
        if q.count != layout.qCount {
            q = [Float](repeating: 0, count: layout.qCount)
            q.withUnsafeMutableBufferPointer { qb in
                for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
                    Philox(seed: seed, stream: Philox.stream(0, UInt64(index))).fillNormal(
                        UnsafeMutableBufferPointer(rebasing: qb[entry.qOffset ..< entry.qOffset + entry.columns * entry.rank]))
                }
            }
        }
        try layout.allReduceUncompressed(&gradients, over: group)

        let codec = LogQuantizer(bits: bits, alpha: alpha)
        var p = [Float](repeating: 0, count: layout.pCount)
        var error = take(&self.error), q = take(&self.q)
        defer { self.error = error; self.q = q }
        var scratch = [Float](repeating: 0, count: layout.entries.map { $0.rank * $0.columns }.max() ?? 0)
        // 1. P_w = (G + E)·Q, E ← M.
        error.withUnsafeMutableBufferPointer { eb in q.withUnsafeBufferPointer { qb in p.withUnsafeMutableBufferPointer { pb in
            scratch.withUnsafeMutableBufferPointer { t in
                for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
                    LowRankKernels.transpose(qb.baseAddress! + entry.qOffset, rows: entry.columns, columns: entry.rank, into: t.baseAddress!)
                    _ = gradients[index].withUnsafeBufferPointer { g in
                        LowRankKernels.project(gradient: g.baseAddress!, error: eb.baseAddress! + entry.errorOffset,
                                               rows: entry.rows, columns: entry.columns, qt: t.baseAddress!, rank: entry.rank,
                                               into: pb.baseAddress! + entry.pOffset)
                    }
                }
            }
        } } }
        // 2. Quantized P's all-gathered, dequantized, summed in rank order; P̂ = orth(P).
        let compressed = layout.entries.enumerated().filter(\.element.isCompressed)
        let pBlocks = compressed.map { Block(offset: $0.element.pOffset, count: $0.element.rows * $0.element.rank, tensor: $0.offset) }
        (p, _) = try exchange(p, blocks: pBlocks, factor: "P", codec: codec, over: group, average: false)
        try p.withUnsafeMutableBufferPointer { pb in
            for entry in layout.entries where entry.isCompressed {
                try Orthonormalization.preferred(rank: entry.rank).apply(pb.baseAddress! + entry.pOffset, rows: entry.rows, columns: entry.rank)
            }
        }
        // 3. Q_w = M_wᵀ P̂; quantized, all-gathered, averaged: Q̄ and this worker's D(C(Q_w)).
        var localQ = [Float](repeating: 0, count: layout.qCount)
        error.withUnsafeBufferPointer { eb in p.withUnsafeBufferPointer { pb in localQ.withUnsafeMutableBufferPointer { lq in
            for entry in layout.entries where entry.isCompressed {
                TallSkinny.multiplyTransposed(eb.baseAddress! + entry.errorOffset, rows: entry.rows, columns: entry.columns,
                                              by: pb.baseAddress! + entry.pOffset, rank: entry.rank, into: lq.baseAddress! + entry.qOffset)
            }
        } } }
        let qBlocks = compressed.map { Block(offset: $0.element.qOffset, count: $0.element.columns * $0.element.rank, tensor: $0.offset) }
        let (meanQ, ownQ) = try exchange(localQ, blocks: qBlocks, factor: "Q", codec: codec, over: group, average: true)
        q = meanQ
        // 4. G ← P̂Q̄ᵀ, E ← M − P̂·D(C(Q_w))ᵀ.
        var norms = LowRankKernels.Norms()
        var ownT = scratch
        error.withUnsafeMutableBufferPointer { eb in p.withUnsafeBufferPointer { pb in q.withUnsafeBufferPointer { qb in
            ownQ.withUnsafeBufferPointer { ob in scratch.withUnsafeMutableBufferPointer { t in ownT.withUnsafeMutableBufferPointer { o in
                for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
                    let (n, m, r) = (entry.rows, entry.columns, entry.rank)
                    LowRankKernels.transpose(qb.baseAddress! + entry.qOffset, rows: m, columns: r, into: t.baseAddress!)
                    LowRankKernels.transpose(ob.baseAddress! + entry.qOffset, rows: m, columns: r, into: o.baseAddress!)
                    gradients[index].withUnsafeMutableBufferPointer { g in
                        let result = LowRankKernels.reconstruct(
                            input: eb.baseAddress! + entry.errorOffset, rows: n, columns: m, pHat: pb.baseAddress! + entry.pOffset,
                            rank: r, meanQt: t.baseAddress!, localQt: o.baseAddress!, output: g.baseAddress!,
                            error: eb.baseAddress! + entry.errorOffset)
                        norms.input += result.input
                        norms.residual += result.residual
                    }
                }
            } } }
        } } }
        let relative = norms.input > 0 ? (norms.residual / norms.input).squareRoot() : 0
        return meter.finish(uncompressedBytes: 4 * layout.totalCount, relativeError: relative)
    }

    /// One factor block of a compressed tensor in a packed factor buffer.
    struct Block {
        var offset: Int, count: Int, tensor: Int
    }

    /// Quantizes each block of `values`, all-gathers the codes, and returns the sum (or mean)
    /// of every worker's dequantized blocks, summed in rank order, and this worker's own
    /// dequantized values. Throws `nonFiniteInput` (before the all-gather) for a block holding
    /// NaN/Inf, `corruptMessage` for a peer's invalid block.
    func exchange(_ values: [Float], blocks: [Block], factor: String, codec: LogQuantizer,
                  over group: any Communicator, average: Bool) throws -> ([Float], [Float]) {
        var message: [UInt8] = []
        for block in blocks {
            let slice = values[block.offset ..< block.offset + block.count]
            if let bad = slice.firstIndex(where: { !$0.isFinite }) {
                throw CompressorError.nonFiniteInput(method: "lqsgd", tensor: block.tensor,
                    detail: "its \(factor) factor holds \(values[bad]) (the gradient or its error-corrected sum holds NaN/Inf or overflows)")
            }
            codec.encode(slice, into: &message)
        }
        let all = try group.allGather(message)
        var total = [Float](repeating: 0, count: values.count), own = total
        for (worker, bytes) in all.enumerated() {
            guard bytes.count == message.count else {
                throw GradientCompressionError.corruptMessage("worker \(worker) sent \(bytes.count) bytes of quantized factors, expected \(message.count)")
            }
            var cursor = 0
            for block in blocks {
                let decoded = try codec.decode(bytes, cursor: &cursor, count: block.count, context: "worker \(worker)'s \(factor) factor of tensor \(block.tensor)")
                for j in 0..<block.count { total[block.offset + j] += decoded[j] }
                if worker == group.rank { for j in 0..<block.count { own[block.offset + j] = decoded[j] } }
            }
        }
        if average { let s = 1 / Float(all.count); for j in total.indices { total[j] *= s } }
        return (total, own)
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("lqsgd")
        archive.write(name)
        archive.write(step)
        archive.writeShapeList(layout?.shapes)
        archive.write(q)
        archive.write(error)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("lqsgd")
        try archive.expect(name)
        let step = try archive.readInt()
        let restored = try archive.readShapeList().map {
            MatrixLayout(shapes: $0, ranks: [rank], minCompressionRate: minCompressionRate)
        }
        let q = try archive.readFloats(), error = try archive.readFloats()
        guard q.isEmpty || q.count == restored?.qCount, error.isEmpty || error.count == restored?.compressedCount else {
            throw StateArchiveError.unexpectedValue(expected: "LQ-SGD factors matching the saved shapes", offset: archive.offset)
        }
        self.step = step
        self.layout = restored
        self.q = q
        self.error = error
        self.agreementChecked = restored != nil  // as in PowerSGD.restoreState
    }
}

/// The b-bit log codec of LQ-SGD (see `LQSGD` for each choice): per block a fp32 scale,
/// then the codes c + L (c = round(L·ln(1+α|x|/s)/ln(1+α))·sign x), b bits each, packed LSB first.
struct LogQuantizer {
    let bits: Int
    let alpha: Float
    var levels: Int { (1 << (bits - 1)) - 1 }

    /// Appends the block's scale and codes; `values` must be finite (the caller checks).
    func encode(_ values: ArraySlice<Float>, into bytes: inout [UInt8]) {
        var scale: Float = 0
        for v in values { scale = max(scale, abs(v)) }
        withUnsafeBytes(of: scale.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        let l = Float(levels), logBase = (1 + alpha).logNatural
        var accumulator: UInt32 = 0, filled = 0
        for v in values {
            var code = 0
            if scale > 0 {
                let q = (1 + alpha * abs(v) / scale).logNatural / logBase
                code = Int((q * l).rounded()) * (v < 0 ? -1 : 1)
            }
            accumulator |= UInt32(code + levels) << UInt32(filled)
            filled += bits
            while filled >= 8 { bytes.append(UInt8(truncatingIfNeeded: accumulator)); accumulator >>= 8; filled -= 8 }
        }
        if filled > 0 { bytes.append(UInt8(truncatingIfNeeded: accumulator)) }
    }

    /// Decodes one block at `cursor` (the caller checked the message's length). Throws on a
    /// non-finite or negative scale or a code beyond ±L, which the encoder never sends.
    func decode(_ bytes: [UInt8], cursor: inout Int, count: Int, context: @autoclosure () -> String) throws -> [Float] {
        var pattern: UInt32 = 0
        for i in 0..<4 { pattern |= UInt32(bytes[cursor + i]) << (8 * UInt32(i)) }
        cursor += 4
        let scale = Float(bitPattern: pattern)
        guard scale.isFinite, scale >= 0 else {
            throw GradientCompressionError.corruptMessage("LQ-SGD: \(context()) has scale \(scale)")
        }
        let l = Float(levels), mask = UInt32((1 << bits) - 1)
        var result = [Float](repeating: 0, count: count)
        var accumulator: UInt32 = 0, filled = 0
        for j in 0..<count {
            while filled < bits { accumulator |= UInt32(bytes[cursor]) << UInt32(filled); cursor += 1; filled += 8 }
            let code = Int(accumulator & mask) - levels
            accumulator >>= UInt32(bits); filled -= bits
            guard code <= levels else {
                throw GradientCompressionError.corruptMessage("LQ-SGD: \(context()) has code \(code) beyond ±\(levels) at entry \(j)")
            }
            if code != 0 {
                let q = Float(abs(code)) / l
                let magnitude = scale * ((1 + alpha).power(q) - 1) / alpha
                result[j] = code < 0 ? -magnitude : magnitude
            }
        }
        // Leftover bits of the last byte belong to this block (blocks start byte-aligned).
        return result
    }
}

fileprivate extension Float {
    var logNatural: Float { Float(_log(Double(self))) }
    func power(_ exponent: Float) -> Float { Float(_exp(Double(exponent) * _log(Double(self)))) }
}

@inline(__always) private func _log(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.log(x)
    #else
    return Darwin.log(x)
    #endif
}
@inline(__always) private func _exp(_ x: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.exp(x)
    #else
    return Darwin.exp(x)
    #endif
}

extension LQSGD {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "lqsgd", summary: "PowerSGD with b-bit log-quantized factors (all-gathered)",
        options: [ReducerOption("rank", .integer(1...4096), default: "2"), ReducerOption("bits", .integer(2...8), default: "8"),
                  ReducerOption("alpha", .number(1e-6...1e9), default: "10"), .seed]) { o, seed in
        try LQSGD(rank: try o.int("rank"), bits: try o.int("bits"), alpha: Float(try o.double("alpha")),
                  seed: try o.seed(defaultingTo: seed))
    }
}
