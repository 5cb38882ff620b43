#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Collectives
import LinearAlgebra

/// Deep Gradient Compression (Lin et al. 2018; ALGORITHMS.md §5.5), one reducer with its state.
///
/// Per tensor, worker w keeps a momentum u_w and an accumulated update v_w:
/// ```
/// u ← m·u + g;   v ← v + u                 (momentum correction)
///   Nesterov:   u ← (u + g)·m;  v ← v + u + g
/// send the top-k of |v| (threshold from a 1% strided sample, `TopKSelection.sampled`)
/// v[sent] ← 0;   u[sent] ← 0               (momentum factor masking, `maskMomentum`)
/// output = (1/W) Σ_w scatter(values_w)     (all-gather of (value, index) pairs, 8k bytes)
/// ```
/// The output already contains the momentum (`appliesMomentum`): the optimizer must apply plain
/// SGD to it (no second momentum), plus its weight-decay term (§5.5).
///
/// Sparsity warm-up (the release's rule, which reproduces the paper's 75% → 93.75% → 98.4% →
/// 99.6% → 99.9% schedule for density 0.001 and 4 warm-up epochs): during epoch e <
/// `warmupEpochs` the density is max(c^(e+1), density) with c = density^(1/(warmupEpochs+1));
/// the epoch is ⌊step / stepsPerEpoch⌋. `stepsPerEpoch` = 0 takes the training loop's epoch
/// length (`prepare(stepsPerEpoch:)`), so the warm-up is on by default under the trainer;
/// `warmupEpochs` = 0 turns it off.
/// Every worker computes the same density from the same step, so message sizes agree.
/// Tensors with fewer than `denseBelow` elements are all-reduced uncompressed (as the release
/// does for biases and batch-norm parameters), in one fp32 all-reduce.
/// Not implemented: the local gradient clipping of §5.5 (clip in the trainer before `reduce`).
public struct DeepGradientCompression: GradientReducer {
    public let density: Double
    public let momentum: Float
    public let nesterov: Bool
    public let maskMomentum: Bool
    public let warmupEpochs: Int
    /// Steps per epoch of the warm-up schedule (0 until the trainer says, when not given).
    public private(set) var stepsPerEpoch: Int
    /// Whether `stepsPerEpoch` was given, so `prepare(stepsPerEpoch:)` keeps it.
    let stepsPerEpochIsGiven: Bool
    public let sampleRatio: Double
    public let denseBelow: Int
    public let seed: UInt64
    public private(set) var step = 0
    var momenta: [Tensor] = []
    var accumulators: [Tensor] = []
    var layout = GradientLayout()

    public init(density: Double = 0.001, momentum: Float = 0.9, nesterov: Bool = false, maskMomentum: Bool = true,
                warmupEpochs: Int = 4, stepsPerEpoch: Int = 0, sampleRatio: Double = 0.01, denseBelow: Int = 0,
                seed: UInt64 = 0) throws {
        guard density > 0, density <= 1 else { throw GradientCompressionError.invalidOption("dgc: density=\(density) must be in (0, 1]") }
        guard momentum >= 0, momentum < 1 else { throw GradientCompressionError.invalidOption("dgc: momentum=\(momentum) must be in [0, 1)") }
        guard warmupEpochs >= 0, stepsPerEpoch >= 0, denseBelow >= 0 else {
            throw GradientCompressionError.invalidOption("dgc: warmup-epochs, steps-per-epoch and dense-below must be ≥ 0")
        }
        guard sampleRatio > 0, sampleRatio <= 1 else { throw GradientCompressionError.invalidOption("dgc: sample=\(sampleRatio) must be in (0, 1]") }
        self.density = density
        self.momentum = momentum
        self.nesterov = nesterov
        self.maskMomentum = maskMomentum
        self.warmupEpochs = warmupEpochs
        self.stepsPerEpoch = stepsPerEpoch
        self.stepsPerEpochIsGiven = stepsPerEpoch > 0
        self.sampleRatio = sampleRatio
        self.denseBelow = denseBelow
        self.seed = seed
    }

    /// `dgc(density=…)` and the options that differ from the catalog's defaults (the seed is the run's).
    public var name: String {
        var parts: [(key: String, value: String)] = [("density", "\(density)")]
        if momentum != 0.9 { parts.append(("momentum", "\(momentum)")) }
        if nesterov { parts.append(("nesterov", "true")) }
        if !maskMomentum { parts.append(("mask-momentum", "false")) }
        if warmupEpochs != 4 { parts.append(("warmup-epochs", "\(warmupEpochs)")) }
        if stepsPerEpochIsGiven { parts.append(("steps-per-epoch", "\(stepsPerEpoch)")) }
        if denseBelow != 0 { parts.append(("dense-below", "\(denseBelow)")) }
        return ReducerSpecification.reducerName("dgc", parts)
    }

    public var appliesMomentum: Bool { momentum > 0 }

    public mutating func prepare(stepsPerEpoch steps: Int) {
        if !stepsPerEpochIsGiven { stepsPerEpoch = max(0, steps) }
    }

    /// The density used at `step` (the warm-up schedule).
    public func density(atStep step: Int) -> Double {
        guard stepsPerEpoch > 0, warmupEpochs > 0 else { return density }
        let epoch = step / stepsPerEpoch
        guard epoch < warmupEpochs else { return density }
        let c = libmPower(density, 1 / Double(warmupEpochs + 1))
        return max(libmPower(c, Double(epoch + 1)), density)
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        try layout.check(gradients)
        if momenta.isEmpty {
            momenta = gradients.map { Tensor(shape: $0.shape) }
            accumulators = momenta
        }
        let currentDensity = density(atStep: step)
        let sparse = gradients.indices.filter { gradients[$0].count >= denseBelow }
        let dense = gradients.indices.filter { gradients[$0].count < denseBelow }
        // 1. Momentum correction and selection, per compressed tensor.
        var frame: [UInt8] = []
        for i in sparse {
            let m = momentum, nesterov = self.nesterov
            gradients[i].withUnsafeBufferPointer { g in
                momenta[i].withUnsafeMutableBufferPointer { u in
                    accumulators[i].withUnsafeMutableBufferPointer { v in
                        for j in 0..<g.count {
                            if nesterov {
                                u[j] = (u[j] + g[j]) * m
                                v[j] += u[j] + g[j]
                            } else {
                                u[j] = m * u[j] + g[j]
                                v[j] += u[j]
                            }
                        }
                    }
                }
            }
            let k = sparseCount(ratio: currentDensity, elements: gradients[i].count)
            var generator = CompressionKey(rank: group.rank, step: step, tensor: i).workerGenerator(seed: seed)
            let indices = accumulators[i].withUnsafeBufferPointer {
                TopKSelection.sampled($0, k: k, sampleRatio: sampleRatio, generator: &generator)
            }
            for j in indices where !accumulators[i].scalars[Int(j)].isFinite {
                throw CompressorError.nonFiniteInput(method: "dgc", tensor: i, detail: "accumulated element \(j) is \(accumulators[i].scalars[Int(j)])")
            }
            frame.append(contentsOf: accumulators[i].withUnsafeBufferPointer { SparseMessage.encode($0, indices: indices) })
            // 2. Clear what was sent, and mask the momentum of those coordinates.
            for j in indices {
                accumulators[i].scalars[Int(j)] = 0
                if maskMomentum { momenta[i].scalars[Int(j)] = 0 }
            }
        }
        // 3. All-gather and average the sparse messages; all-reduce the small tensors.
        let frames = try group.allGather(frame)
        var output = gradients
        for i in sparse { output[i] = Tensor(shape: gradients[i].shape) }
        let weight = 1 / Float(group.size)
        for (rank, frame) in frames.enumerated() {
            try frame.withUnsafeBytes { bytes in
                var reader = ByteReader(bytes, context: "DGC frame from worker \(rank)")
                for i in sparse {
                    let k = sparseCount(ratio: currentDensity, elements: gradients[i].count)
                    let message = try reader.take(SparseMessage.bytes(count: k), "tensor \(i)'s entries")
                    try output[i].withUnsafeMutableBufferPointer {
                        try SparseMessage.decode(message, count: k, context: "DGC", shape: gradients[i].shape, weight: weight, accumulatingInto: $0)
                    }
                }
                try reader.expectEnd()
            }
        }
        if !dense.isEmpty {
            var flat = Flattening.concatenate(dense.map { gradients[$0] })
            try flat.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }
            for (i, t) in zip(dense, Flattening.split(flat, like: dense.map { gradients[$0] })) { output[i] = t }
        }
        gradients = output
        step += 1
        return meter.finish(uncompressedBytes: 4 * GradientLayout.elementCount(gradients))
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("dgc:\(name)")
        archive.write(step)
        layout.save(to: &archive)
        archive.write(momenta.count)
        for t in momenta + accumulators { archive.write(t) }
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("dgc:\(name)")
        step = try archive.readInt()
        try layout.restore(from: &archive)
        let count = try archive.readInt()
        guard count == 0 || count == layout.shapes?.count else {
            throw StateArchiveError.unexpectedValue(expected: "DGC state tensor count", offset: archive.offset)
        }
        let all = try (0 ..< 2 * count).map { _ in try archive.readTensor() }
        if let shapes = layout.shapes, count > 0 {
            for (index, tensor) in all.enumerated() where tensor.shape != shapes[index % count] {
                throw StateArchiveError.unexpectedValue(
                    expected: "DGC \(index < count ? "momentum" : "accumulator") of tensor \(index % count) with shape \(shapes[index % count]), not \(tensor.shape)",
                    offset: archive.offset)
            }
        }
        momenta = Array(all[0..<count])
        accumulators = Array(all[count...])
    }
}

/// x^y (libm pow).
@inlinable
func libmPower(_ x: Double, _ y: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.pow(x, y)
    #else
    return Darwin.pow(x, y)
    #endif
}

extension DeepGradientCompression {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "dgc", summary: "Deep Gradient Compression: top-`density` sparsification with momentum correction, momentum masking and a density warm-up",
        options: [ReducerOption("density", .number(1e-9...1), default: "0.001"),
                  ReducerOption("momentum", .number(0...0.999999), default: "0.9"),
                  ReducerOption("nesterov", .flag, default: "false"),
                  ReducerOption("mask-momentum", .flag, default: "true"),
                  ReducerOption("warmup-epochs", .integer(0...1000), default: "4"),
                  ReducerOption("steps-per-epoch", .integer(0...Int.max), default: "0"),
                  ReducerOption("dense-below", .integer(0...Int.max), default: "0"), .seed]) { o, seed in
        try DeepGradientCompression(
            density: try o.double("density"), momentum: Float(try o.double("momentum")), nesterov: try o.bool("nesterov"),
            maskMomentum: try o.bool("mask-momentum"), warmupEpochs: try o.int("warmup-epochs"),
            stepsPerEpoch: try o.int("steps-per-epoch"), denseBelow: try o.int("dense-below"),
            seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF))
    }
}
