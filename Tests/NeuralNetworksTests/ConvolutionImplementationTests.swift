import Testing
import LinearAlgebra
@testable import NeuralNetworks
import TestSupport

/// oneDNN's convolutions against the im2col implementation (the oracle, itself checked against the
/// direct sum and finite differences in LayerGradientTests): the same Y, ∂W and ∂X to float
/// rounding, on the geometries the models use and their edges.
@Suite struct ConvolutionImplementationTests {
    struct Geometry: Sendable, CustomStringConvertible {
        var channels: Int, outChannels: Int, batch: Int, height: Int, width: Int
        var kernel: Int, stride: Int, padding: Int
        var description: String { "c\(channels) o\(outChannels) b\(batch) \(height)×\(width) k\(kernel) s\(stride) p\(padding)" }
    }

    static let geometries = [
        Geometry(channels: 3, outChannels: 16, batch: 4, height: 12, width: 12, kernel: 3, stride: 1, padding: 1),  // a stem
        Geometry(channels: 16, outChannels: 32, batch: 3, height: 9, width: 7, kernel: 3, stride: 2, padding: 1),   // odd extents
        Geometry(channels: 16, outChannels: 32, batch: 2, height: 8, width: 8, kernel: 1, stride: 2, padding: 0),   // a shortcut
        Geometry(channels: 20, outChannels: 24, batch: 5, height: 6, width: 6, kernel: 1, stride: 1, padding: 0),   // pointwise
        Geometry(channels: 5, outChannels: 7, batch: 2, height: 11, width: 10, kernel: 5, stride: 3, padding: 2),
        Geometry(channels: 64, outChannels: 64, batch: 2, height: 4, width: 4, kernel: 3, stride: 1, padding: 1),
    ]

    struct Products: Equatable { var y: Tensor, weightGradient: Tensor, inputGradient: Tensor, biasGradient: Tensor? }

    /// Y, and ∂W, ∂X, ∂b after one backward on top of nonzero starting gradients (∂W accumulates).
    static func products(_ g: Geometry, _ implementation: ConvolutionImplementation, threads: Int = 1,
                         bias: Bool = false, firstLayer: Bool = false) throws -> Products {
        var initializer = ParameterInitializer(seed: 21)
        let layer = Conv2d(name: "conv", inChannels: g.channels, outChannels: g.outChannels, kernelSize: g.kernel,
                           stride: g.stride, padding: g.padding, bias: bias, initializer: &initializer, threads: threads)
        layer.implementation = implementation
        layer.computesInputGradient = !firstLayer
        layer.weight.gradient = normalTensor(layer.weight.value.shape, seed: 22)
        let x = normalTensor([g.channels, g.batch, g.height, g.width], seed: 23)
        let y = try layer.forward(x, training: true)
        let dx = try layer.backward(normalTensor(y.shape, seed: 24))
        return Products(y: y, weightGradient: layer.weight.gradient, inputGradient: dx, biasGradient: layer.bias?.gradient)
    }

    /// max |a − b| over max |b|.
    static func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = b.scalars.map(abs).max() ?? 0
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! / max(scale, .leastNormalMagnitude)
    }

    @Test(arguments: geometries, [1, 2])
    func oneDNNEqualsIm2col(geometry: Geometry, threads: Int) throws {
        let ours = try Self.products(geometry, .oneDNN, threads: threads, bias: true)
        let oracle = try Self.products(geometry, .im2col, bias: true)
        #expect(ours.y.shape == oracle.y.shape && ours.inputGradient.shape == oracle.inputGradient.shape)
        // Sums of up to C·k² = 576 products in another order: rounding of a few ulps of the largest term.
        #expect(Self.relativeDifference(ours.y, oracle.y) < 1e-5, "Y, \(geometry)")
        #expect(Self.relativeDifference(ours.weightGradient, oracle.weightGradient) < 1e-5, "∂W, \(geometry)")
        #expect(Self.relativeDifference(ours.inputGradient, oracle.inputGradient) < 1e-5, "∂X, \(geometry)")
        #expect(ours.biasGradient == oracle.biasGradient)
    }

    @Test func aFirstLayerSkipsTheInputGradient() throws {
        let g = Self.geometries[0]
        let ours = try Self.products(g, .oneDNN, firstLayer: true)
        #expect(ours.inputGradient.scalars.allSatisfy { $0 == 0 })
        #expect(Self.relativeDifference(ours.weightGradient, try Self.products(g, .im2col).weightGradient) < 1e-5)
    }

    @Test func oneDNNIsReproducible() throws {
        for g in Self.geometries.prefix(3) {
            for threads in [1, 2] {
                #expect(try Self.products(g, .oneDNN, threads: threads) == Self.products(g, .oneDNN, threads: threads), "\(g)")
            }
        }
    }

    @Test func changingTheBatchKeepsResultsExact() throws {
        // The layer keeps primitives per geometry: a partial batch in between changes nothing.
        var initializer = ParameterInitializer(seed: 5)
        let layer = Conv2d(name: "conv", inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, initializer: &initializer)
        let full = normalTensor([8, 4, 6, 6], seed: 6), partial = normalTensor([8, 3, 6, 6], seed: 7)
        let first = try layer.forward(full, training: false)
        let partialOutput = try layer.forward(partial, training: false)
        #expect(partialOutput.shape == [8, 3, 6, 6])
        #expect(try layer.forward(full, training: false) == first)
        layer.implementation = .im2col
        #expect(Self.relativeDifference(partialOutput, try layer.forward(partial, training: false)) < 1e-5)
    }

    @Test func aPerExampleRecordingLeavesTheWeightGradientAlone() throws {
        var initializer = ParameterInitializer(seed: 9)
        let layer = Conv2d(name: "conv", inChannels: 4, outChannels: 6, kernelSize: 3, padding: 1, initializer: &initializer)
        layer.recordsOutputGradient = true
        let y = try layer.forward(normalTensor([4, 2, 5, 5], seed: 10), training: true)
        let dx = try layer.backward(normalTensor(y.shape, seed: 11))
        #expect(layer.weight.gradient.scalars.allSatisfy { $0 == 0 })
        #expect(dx.scalars.contains { $0 != 0 })
        #expect(layer.recordedOutputGradient != nil)
    }

    @Test func theKernelsAreNamed() throws {
        var initializer = ParameterInitializer(seed: 12)
        let layer = Conv2d(name: "conv", inChannels: 4, outChannels: 6, kernelSize: 3, padding: 1, initializer: &initializer)
        // oneDNN's names: "jit:avx512_core", "jit:avx2", "gemm:jit", ... never the reference loop.
        let kernels = try layer.kernelDescription(inputShape: [4, 2, 8, 8])
        #expect(!kernels.contains("ref"), "\(kernels)")
        layer.implementation = .im2col
        #expect(try layer.kernelDescription(inputShape: [4, 2, 8, 8]) == "im2col + sgemm")
    }
}
