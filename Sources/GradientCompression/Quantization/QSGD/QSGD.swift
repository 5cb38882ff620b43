import LinearAlgebra

/// QSGD (Alistarh et al. 2017; ALGORITHMS.md §3): stochastic quantization to s levels per bucket.
///
/// For each bucket v of `bucketSize` consecutive elements with scale ‖v‖ (L2, the theory, or
/// max-norm, the paper's experiments), element i is sent as sgn(vᵢ)·ζᵢ with the integer level
/// ζᵢ = ⌊aᵢ⌋ + [U < aᵢ − ⌊aᵢ⌋], aᵢ = s·|vᵢ|/‖v‖ ∈ [0, s], and decoded as sgn(vᵢ)·‖v‖·ζᵢ/s.
/// E[ζᵢ] = aᵢ, so the decoded vector is unbiased (§3.1; the `U < frac` rule of §3.4).
/// A zero bucket has scale 0 and decodes to zeros (§3.4: Q(0) = 0).
///
/// The parts, each in its own file:
/// - `QSGD+Quantizer.swift`: a bucket's scale and level words ζᵢ | sign << 31 (tiny buckets
///   included), and the decoder's unit per bucket;
/// - `QSGD+WireFormat.swift`: the two message layouts, `.fixedWidth` and `.elias`, with their
///   sizes and bounds;
/// - `QSGD+FixedWidthCoder.swift` and `QSGD+EliasCoder.swift`: the fast coders of each layout;
/// - `QSGDReference.swift`: the same messages written and read plainly, element by element, the
///   oracle the tests hold the fast coders to, bit for bit.
public struct QSGD: Compressor {
    public enum Scaling: String, Sendable { case l2, max }
    public enum Format: String, Sendable { case fixedWidth = "fixed", elias }

    /// s, the number of nonzero levels (1 ... 2²⁴).
    public let levels: Int
    /// d, the elements per bucket, each with its own scale.
    public let bucketSize: Int
    public let scaling: Scaling
    public let format: Format
    public let seed: UInt64

    public init(levels: Int, bucketSize: Int = 512, scaling: Scaling = .l2, format: Format = .elias, seed: UInt64 = 0) throws {
        guard (1...(1 << 24)).contains(levels) else {
            throw GradientCompressionError.invalidOption("qsgd: levels=\(levels) must be in 1...\(1 << 24)")
        }
        guard bucketSize >= 1 else {
            throw GradientCompressionError.invalidOption("qsgd: bucket=\(bucketSize) must be at least 1")
        }
        self.levels = levels
        self.bucketSize = bucketSize
        self.scaling = scaling
        self.format = format
        self.seed = seed
    }

    public var name: String {
        ReducerSpecification.reducerName("qsgd", [("levels", "\(levels)"), ("bucket", "\(bucketSize)"),
                                                  ("norm", scaling.rawValue), ("format", format.rawValue)])
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        format == .fixedWidth ? try encodeFixedWidth(values, key: key) : try encodeElias(values, key: key, kernel: .preferred)
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try decode(message, shape: shape, weight: weight, accumulatingInto: output, kernel: .preferred)
    }

    /// `decode` on the given path of the Elias decoder's final pass (the same bits on every path).
    func decode(_ message: UnsafeRawBufferPointer, shape: [Int], weight: Float,
                accumulatingInto output: UnsafeMutableBufferPointer<Float>, kernel: KernelPath) throws {
        let n = output.count
        if let expected = fixedMessageBytes(shape: shape) { try expectMessageBytes(message, expected, "QSGD", shape: shape) }
        var reader = ByteReader(message, context: "QSGD")
        let header = format == .elias ? try readEliasHeader(&reader, elements: n) : nil
        let units = try readUnits(&reader, buckets: bucketCount(n), weight: weight)
        let rest = UnsafeRawBufferPointer(rebasing: message[reader.offset...])
        guard let out = output.baseAddress else {
            if let header, header.stream0Bytes != 0 || !rest.isEmpty {
                throw GradientCompressionError.corruptMessage("QSGD message for an empty tensor has \(rest.count) stream bytes")
            }
            return
        }
        if let header {
            // Checks both streams whole before it adds anything.
            return try decodeElias(try header.streams(rest), nonzeros: header.nonzeros, n: n, units: units, into: out, kernel: kernel)
        }
        // The fixed-width fields are checked while they are decoded, so a corrupt one is found
        // after earlier elements were added: the output's previous values are kept and put back on a throw.
        let saved = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        defer { saved.deallocate() }
        _ = saved.initialize(fromContentsOf: output)
        do {
            try decodeFixedWidth(BitSource(rest, context: "QSGD"), n: n, units: units, into: out)
        } catch {
            _ = output.update(fromContentsOf: saved)
            throw error
        }
    }
}

extension QSGD {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "qsgd",
        summary: "QSGD: stochastic quantization to `levels` levels per bucket of `bucket` values (l2 or max norm), "
            + "Elias-coded or fixed-width, all-gathered",
        options: [ReducerOption("levels", .integer(1...(1 << 24)), default: "64"),
                  ReducerOption("bucket", .integer(1...Int(Int32.max)), default: "512"),
                  ReducerOption("norm", .choice(["l2", "max"]), default: "l2"),
                  ReducerOption("format", .choice(["elias", "fixed"]), default: "elias"),
                  .feedback(default: "none"), .seed]) { o, seed in
        let q = try QSGD(levels: try o.int("levels"), bucketSize: try o.int("bucket"),
                         scaling: Scaling(rawValue: try o.choice("norm"))!, format: Format(rawValue: try o.choice("format"))!,
                         seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF))
        return try ErrorFeedback.wrapping(AllGatherReducer(q), try o.choice("feedback"))
    }
}
