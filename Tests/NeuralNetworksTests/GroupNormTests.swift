import Testing
import LinearAlgebra
import TestSupport
@testable import NeuralNetworks

/// Group normalization (`GroupNorm`): the forward against a direct computation, the backward
/// against finite differences, and the property DP-SGD relies on (no example affects another).
@Suite struct GroupNormTests {
    let checker = GradientCheck()

    static func layer(groups: Int, channels: Int, appliesReLU: Bool = false, threads: Int = 1) throws -> GroupNorm {
        let layer = try GroupNorm(name: "gn", groups: groups, channels: channels, appliesReLU: appliesReLU, threads: threads)
        layer.weight.value = normalTensor([channels], seed: 30, stream: 77)
        layer.bias.value = normalTensor([channels], seed: 31, stream: 77)
        return layer
    }

    /// Against Double sums over each example's group of (C/G)·H·W values, to 1e-5 absolute
    /// (outputs are O(1); float32 rounding over ≤ 100 values is ~1e-6).
    @Test(arguments: [(1, 4), (2, 4), (4, 4)])
    func forwardNormalizesEachExamplesGroup(groups: Int, channels: Int) throws {
        let (b, h, w) = (3, 2, 5)
        let layer = try Self.layer(groups: groups, channels: channels)
        let x = normalTensor([channels, b, h, w], seed: 32, stream: 77, standardDeviation: 3)
        let y = try layer.forward(x, training: true)
        let per = channels / groups, plane = h * w
        var worst = 0.0
        for e in 0..<b {
            for g in 0..<groups {
                let values = (g * per..<(g + 1) * per).flatMap { c in (0..<plane).map { Double(x.scalars[(c * b + e) * plane + $0]) } }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
                for c in g * per..<(g + 1) * per {
                    for i in 0..<plane {
                        let k = (c * b + e) * plane + i
                        let expected = (Double(x.scalars[k]) - mean) / (variance + 1e-5).squareRoot()
                            * Double(layer.weight.value.scalars[c]) + Double(layer.bias.value.scalars[c])
                        worst = max(worst, abs(expected - Double(y.scalars[k])))
                    }
                }
            }
        }
        #expect(worst < 1e-5, "largest difference \(worst)")
        // No running statistics: evaluation computes the same function.
        #expect(try layer.forward(x, training: false) == y)
    }

    /// Central differences (GradientCheck's tolerance argument): input, γ and β, with groups of
    /// one, two and four channels. The fused ReLU is then checked exactly against its definition
    /// (forward: ReLU of the unfused output; backward: the unfused backward of ∂y masked by y > 0),
    /// since ±eps on γ moves pre-activations across the kink.
    @Test(arguments: [1, 2, 4])
    func backwardMatchesFiniteDifferences(groups: Int) throws {
        let x = normalTensor([4, 3, 3, 3], seed: 33, stream: 77)
        let plain = try Self.layer(groups: groups, channels: 4)
        for result in try checker.check(layer: plain, input: x) {
            #expect(result.1 < checker.tolerance, "groups \(groups): gradient of \(result.0) has relative error \(result.1)")
        }
        let fused = try Self.layer(groups: groups, channels: 4, appliesReLU: true)
        let y = try fused.forward(x, training: true)
        #expect(y == ReLU.apply(try plain.forward(x, training: true)))
        let r = normalTensor(x.shape, seed: 36, stream: 77)
        let masked = Tensor(shape: r.shape) { i in y.scalars[i] > 0 ? r.scalars[i] : 0 }
        for p in fused.parameters + plain.parameters { p.zeroGradient() }
        let dxFused = try fused.backward(r), dxPlain = try plain.backward(masked)
        #expect(dxFused == dxPlain)
        #expect(fused.weight.gradient == plain.weight.gradient && fused.bias.gradient == plain.bias.gradient)
        #expect(masked.scalars.contains(0) && masked.scalars.contains { $0 != 0 }, "the mask acts")
    }

    /// Changing one example changes neither the other examples' outputs nor their input
    /// gradients (the reason DP-SGD can use group norm and not batch norm); two threads give the
    /// same bits as one.
    @Test func examplesDoNotInteract() throws {
        let layer = try Self.layer(groups: 2, channels: 4, appliesReLU: true)
        let x = normalTensor([4, 3, 4, 4], seed: 34, stream: 77)
        var changed = x
        for c in 0..<4 { for i in 0..<16 { changed.scalars[(c * 3 + 1) * 16 + i] *= -2 } }  // example 1 only
        let r = normalTensor([4, 3, 4, 4], seed: 35, stream: 77)
        let y = try layer.forward(x, training: true), dx = try layer.backward(r)
        let y2 = try layer.forward(changed, training: true), dx2 = try layer.backward(r)
        for c in 0..<4 {
            for e in [0, 2] {
                let range = ((c * 3 + e) * 16)..<((c * 3 + e) * 16 + 16)
                #expect(Array(y.scalars[range]) == Array(y2.scalars[range]))
                #expect(Array(dx.scalars[range]) == Array(dx2.scalars[range]))
            }
        }
        #expect(y != y2)
        let threaded = try Self.layer(groups: 2, channels: 4, appliesReLU: true, threads: 2)
        #expect(try threaded.forward(x, training: true) == y)
        #expect(try threaded.backward(r) == dx)
    }

    @Test func groupsMustDivideTheChannels() throws {
        #expect(throws: NeuralNetworkError.self) { try GroupNorm(name: "gn", groups: 3, channels: 4) }
        #expect(GroupNorm.defaultGroups(channels: 16) == 16)
        #expect(GroupNorm.defaultGroups(channels: 64) == 32)
        #expect(GroupNorm.defaultGroups(channels: 48) == 24)
    }
}
