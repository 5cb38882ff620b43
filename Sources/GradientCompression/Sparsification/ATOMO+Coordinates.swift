import LinearAlgebra

/// Coordinate-wise ATOMO (Wang et al. 2018, §3: ATOMO over the standard basis; ALGORITHMS.md §4):
/// a tensor v ∈ ℝⁿ is the atomic decomposition v = Σᵢ vᵢ eᵢ, and atom i is kept independently
/// with probability pᵢ and sent as (i, vᵢ/pᵢ), so E[v̂] = v. The pᵢ are those of spectral ATOMO
/// with the magnitudes |vᵢ| in place of the singular values (`ATOMO.probabilities`): they minimize
/// the variance Σ vᵢ²/pᵢ − ‖v‖² under Σ pᵢ = s, so the largest coordinates are kept surely and
/// the rest with probability proportional to |vᵢ|. s = `density`·n, the expected number of
/// coordinates sent per tensor. No error feedback (unbiased), independent Bernoulli draws, so
/// message sizes vary; the decoded sums are averaged over workers (`AllGatherReducer`).
///
/// The paper compares this atom set with the spectral one at equal bits: a kept coordinate
/// costs 64 bits, a kept singular atom of an n×m matrix 32(n + m + 1), so at equal bytes the
/// coordinate-wise form keeps (n + m + 1)/2 coordinates per singular atom.
///
/// Message: the kept count c as a 32-bit integer, then per kept coordinate (ascending index) the
/// index as a 32-bit integer and vᵢ/pᵢ in fp32: 4 + 8c bytes.
public struct CoordinateATOMO: Compressor {
    /// The expected fraction of each tensor's coordinates sent, in (0, 1].
    public let density: Double
    public let seed: UInt64

    public init(density: Double, seed: UInt64 = 0) throws {
        guard density > 0, density <= 1 else {
            throw GradientCompressionError.invalidOption("atomo-coordinates: density=\(density) must be in (0, 1]")
        }
        self.density = density
        self.seed = seed
    }

    public var name: String { ReducerSpecification.reducerName("atomo-coordinates", [("density", "\(density)")]) }

    public func fixedMessageBytes(shape: [Int]) -> Int? { nil }

    /// The inclusion probability of every coordinate of `values` (budget `density`·n).
    public func probabilities(_ values: UnsafeBufferPointer<Float>) -> [Double] {
        let order = values.indices.sorted { abs(values[$0]) > abs(values[$1]) || (abs(values[$0]) == abs(values[$1]) && $0 < $1) }
        let sorted = ATOMO.probabilities(for: order.map { abs(values[$0]) }, budget: density * Double(values.count))
        var p = [Double](repeating: 0, count: values.count)
        for (rank, index) in order.enumerated() { p[index] = sorted[rank] }
        return p
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw CompressorError.nonFiniteInput(method: "atomo-coordinates", tensor: key.tensor, detail: "element \(bad) is \(values[bad])")
        }
        guard values.count <= Int(UInt32.max) else {
            throw GradientCompressionError.invalidOption("atomo-coordinates: a tensor of \(values.count) elements has indices beyond 32 bits")
        }
        let p = probabilities(values)
        var generator = key.workerGenerator(seed: seed)
        var kept: [Int] = []
        for i in values.indices where p[i] > 0 {
            // Bernoulli(pᵢ) by U < pᵢ with U on the 2⁻⁵³ grid.
            if Double(generator.next() >> 11) * 0x1p-53 < p[i] { kept.append(i) }
        }
        var message: [UInt8] = []
        message.reserveCapacity(4 + 8 * kept.count)
        message.appendLittleEndian(UInt32(kept.count))
        for i in kept {
            message.appendLittleEndian(UInt32(i))
            message.appendLittleEndian((values[i] / Float(p[i])).bitPattern)
        }
        return message
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let n = output.count
        var reader = ByteReader(message, context: "ATOMO (coordinates)")
        let count = Int(try reader.readUInt32("the coordinate count"))
        guard count <= n else {
            throw GradientCompressionError.corruptMessage("coordinate-wise ATOMO message claims \(count) coordinates for \(n) elements")
        }
        guard reader.remaining == 8 * count else {
            throw GradientCompressionError.corruptMessage(
                "coordinate-wise ATOMO message with \(count) coordinates must be \(4 + 8 * count) bytes, got \(message.count)")
        }
        // Validate the whole message before touching the output: a corrupt message changes nothing.
        var indices = [Int](repeating: 0, count: count), values = [Float](repeating: 0, count: count)
        var previous = -1
        for c in 0..<count {
            let index = Int(try reader.readUInt32("coordinate \(c)'s index"))
            let value = try reader.readFloat("coordinate \(c)'s value")
            guard index > previous, index < n else {
                throw GradientCompressionError.corruptMessage(
                    "coordinate-wise ATOMO index \(index) at position \(c) is not ascending within 0..<\(n)")
            }
            guard value.isFinite, (weight * value).isFinite, (output[index] + weight * value).isFinite else {
                throw GradientCompressionError.corruptMessage("coordinate-wise ATOMO value at index \(index) is not finite or overflows")
            }
            indices[c] = index
            values[c] = weight * value
            previous = index
        }
        for c in 0..<count { output[indices[c]] += values[c] }
    }
}

extension CoordinateATOMO {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "atomo-coordinates",
        summary: "ATOMO over the standard basis: unbiased sampling of coordinates with an expected `density` of each tensor, all-gathered",
        options: [ReducerOption("density", .number(1e-9...1), default: "0.01"), .seed]) { o, seed in
        AllGatherReducer(try CoordinateATOMO(density: try o.double("density"), seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF)))
    }
}
