import Testing
import LinearAlgebra
import NeuralNetworks
@testable import GradientInversion

func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    Philox(seed: seed, stream: 31).normalTensor(shape: [count], standardDeviation: scale).scalars
}

/// Values with |x| ≥ 0.2, so a perturbation of 1e-2 never crosses a ReLU kink.
func awayFromZero(_ count: Int, seed: UInt64) -> [Float] {
    random(count, seed: seed).map { $0 >= 0 ? $0 + 0.2 : $0 - 0.2 }
}

func axpy(_ a: [Float], _ s: Float, _ b: [Float]) -> [Float] { zip(a, b).map { $0 + s * $1 } }

/// max |a − b| / max |b|; and the reference must not be zero (a check against zeros proves nothing).
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    let scale = b.map(abs).max()!
    precondition(scale > 1e-6, "reference derivative is zero")
    return zip(a, b).map { abs($0 - $1) }.max()! / scale
}

func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

/// Each layer's tangent passes (R-operator) against central differences of its forward and
/// backward passes, perturbing input, parameters and output gradient together by ε = 1e-2.
/// Both layers are piecewise bilinear, so the differences are exact up to float rounding:
/// the stated tolerance is 1e-3 of the largest entry.
@Suite struct LayerSecondOrderTests {
    static let epsilon: Float = 1e-2

    /// Runs forward+backward of `make(θ)` at (x, θ, gy) and returns (y, ∂ℓ/∂x).
    static func passes(_ layer: SecondOrderLayer, _ x: [Float], _ gy: [Float], batch: Int) -> ([Float], [Float]) {
        let y = layer.forward(x, batch: batch)
        return (y, layer.backward(gy))
    }

    static func check(_ layer: SecondOrderLayer, batch: Int, seed: UInt64, input: [Float]? = nil, tolerance: Float = 1e-3) {
        let x = input ?? awayFromZero(batch * layer.inputSize, seed: seed)
        let gy = random(batch * layer.outputSize, seed: seed + 1)
        let xDot = random(x.count, seed: seed + 2), gyDot = random(gy.count, seed: seed + 3)
        let theta = layer.parameters
        let thetaDot = layer.parameterShapes.enumerated().map { random($1.reduce(1, *), seed: seed + 10 + UInt64($0)) }

        _ = passes(layer, x, gy, batch: batch)
        layer.parameterTangents = thetaDot
        let yDot = layer.tangentForward(xDot)
        let gxDot = layer.tangentBackward(gyDot)
        layer.parameterTangents = []

        func at(_ s: Float) -> ([Float], [Float]) {
            layer.parameters = zip(theta, thetaDot).map { axpy($0, s, $1) }
            return passes(layer, axpy(x, s, xDot), axpy(gy, s, gyDot), batch: batch)
        }
        let (yPlus, gxPlus) = at(epsilon), (yMinus, gxMinus) = at(-epsilon)
        layer.parameters = theta
        let yDifference = zip(yPlus, yMinus).map { ($0 - $1) / (2 * epsilon) }
        let gxDifference = zip(gxPlus, gxMinus).map { ($0 - $1) / (2 * epsilon) }
        #expect(relativeError(yDot, yDifference) < tolerance)
        #expect(relativeError(gxDot, gxDifference) < tolerance)
    }

    @Test func denseLayer() {
        for (seed, (n, m, b)) in [(5, 3, 1), (7, 4, 3), (16, 9, 2)].enumerated() {
            let layer = DenseLayer(weight: random(n * m, seed: 100 + UInt64(seed)), bias: random(m, seed: 200 + UInt64(seed)),
                                   inputSize: n, outputSize: m)
            Self.check(layer, batch: b, seed: 300 + UInt64(seed) * 20)
        }
    }

    @Test func convolutionLayer() {
        for (seed, (c, o, k, p, h, b)) in [(1, 2, 3, 1, 5, 1), (2, 3, 5, 2, 6, 2), (3, 2, 3, 0, 4, 2)].enumerated() {
            let layer = ConvolutionLayer(weight: random(o * c * k * k, seed: 500 + UInt64(seed)), bias: random(o, seed: 600 + UInt64(seed)),
                                         inChannels: c, outChannels: o, kernel: k, padding: p, height: h, width: h + 1)
            Self.check(layer, batch: b, seed: 700 + UInt64(seed) * 20)
        }
    }

    /// Strides 2 and 3 (the sigmoid LeNet's first two layers use 2), odd sizes, so some input
    /// pixels are never read — their derivatives must be exactly zero on both sides.
    @Test func stridedConvolutionLayer() {
        for (seed, (c, o, k, s, p, h, b)) in [(1, 2, 5, 2, 2, 7, 1), (2, 3, 3, 2, 1, 6, 2), (3, 2, 3, 3, 0, 8, 2)].enumerated() {
            let layer = ConvolutionLayer(weight: random(o * c * k * k, seed: 900 + UInt64(seed)), bias: random(o, seed: 950 + UInt64(seed)),
                                         inChannels: c, outChannels: o, kernel: k, stride: s, padding: p, height: h, width: h + 1)
            #expect(layer.outputHeight == (h + 2 * p - k) / s + 1)
            Self.check(layer, batch: b, seed: 1000 + UInt64(seed) * 20)
        }
    }

    /// The sigmoid is curved, so the central difference is exact only to O(ε²) (ε = 1e-2,
    /// |σ‴| ≤ 1/8: far inside the tolerance). Its σ''·ẋ term is the one second-order term of the
    /// tangent backward pass: without it the result must differ, so the check cannot pass by
    /// the first-order part alone.
    @Test func sigmoidLayer() {
        for (seed, (n, b)) in [(6, 1), (11, 4)].enumerated() {
            let layer = SigmoidLayer(size: n)
            let x = random(b * n, seed: 1200 + UInt64(seed), scale: 2)
            Self.check(layer, batch: b, seed: 1100 + UInt64(seed) * 20, input: x)
            _ = layer.forward(x, batch: b)
            _ = layer.backward(random(b * n, seed: 1300))
            let gyDot = random(b * n, seed: 1301)
            _ = layer.tangentForward(random(b * n, seed: 1302))
            let full = layer.tangentBackward(gyDot)
            _ = layer.tangentForward(nil)
            #expect(relativeError(layer.tangentBackward(gyDot), full) > 1e-2)
        }
    }

    /// Inputs 0.1 apart (a shuffled ramp), so a perturbation of 1e-2·N(0,1) never changes a window's maximum.
    @Test func maxPoolingLayer() {
        let layer = MaxPoolingLayer(channels: 3, height: 4, width: 6)
        let count = 2 * layer.inputSize
        var order = Xoshiro256(seed: 9)
        let ramp = (0..<count).map { Float($0) * 0.1 }.shuffled(using: &order)
        Self.check(layer, batch: 2, seed: 800, input: ramp)
    }

    @Test func reluLayer() {
        for (seed, (n, b)) in [(6, 1), (11, 4)].enumerated() { Self.check(ReLULayer(size: n), batch: b, seed: 400 + UInt64(seed) * 20) }
    }
}

/// The whole gradient map (layers + soft-label softmax cross-entropy): the derivatives of
/// φ = v·∇_θℓ(x, λ) with respect to the input x and the label logits λ, and of the two matching
/// losses, against central differences (ε = 3e-3, in the directions u and w; softmax is curved,
/// so the tolerance is 1 % of the directional derivative).
@Suite struct GradientMapSecondOrderTests {
    static func network(seed: UInt64) throws -> GradientMap {
        let mlp = MLP.make(inputShape: [1, 3, 4], hidden: [7], classes: 5, seed: seed)
        return try GradientMap(mirroring: mlp)
    }

    @Test func derivativesOfTheGradientDotAFixedDirection() throws {
        let net = try Self.network(seed: 3)
        let batch = 3
        let x = random(batch * net.inputSize, seed: 1), lambda = random(batch * net.classes, seed: 2)
        let v = net.parameterShapes.enumerated().map { random($1.reduce(1, *), seed: 50 + UInt64($0)) }
        let value = net.evaluate(input: x, batch: batch, labels: .soft(logits: lambda)) { _ in v }
        let u = random(x.count, seed: 7), w = random(lambda.count, seed: 8)
        func phi(_ x: [Float], _ l: [Float]) -> Double {
            zip(net.gradients(input: x, batch: batch, labels: .soft(logits: l)).gradients, v).reduce(0) { $0 + dot($1.0, $1.1) }
        }
        let e: Float = 3e-3
        let alongU = (phi(axpy(x, e, u), lambda) - phi(axpy(x, -e, u), lambda)) / Double(2 * e)
        let alongW = (phi(x, axpy(lambda, e, w)) - phi(x, axpy(lambda, -e, w))) / Double(2 * e)
        #expect(abs(alongU) > 1e-3 && abs(alongW) > 1e-3)
        #expect(abs(dot(value.inputDerivative, u) - alongU) < 1e-2 * abs(alongU))
        #expect(abs(dot(value.labelLogitDerivative!, w) - alongW) < 1e-2 * abs(alongW))
    }

    /// The derivatives of `distance`'s matching loss against `observed` in x and in the soft
    /// labels' logits λ, against central differences along random directions (seeds from `seed`).
    static func checkMatchingLoss(_ net: GradientMap, _ distance: GradientDistance, observed: ObservedGradient, batch: Int,
                                  seed: UInt64, epsilon e: Float, floor: Double, tolerance: Double) {
        let x = random(batch * net.inputSize, seed: seed), lambda = random(batch * net.classes, seed: seed + 1)
        let value = net.evaluate(input: x, batch: batch, labels: .soft(logits: lambda)) { distance.valueAndDirection($0, observed).direction }
        func loss(_ x: [Float], _ l: [Float]) -> Double {
            Double(distance.valueAndDirection(net.gradients(input: x, batch: batch, labels: .soft(logits: l)).gradients, observed).value)
        }
        let u = random(x.count, seed: seed + 2), w = random(lambda.count, seed: seed + 3)
        let alongU = (loss(axpy(x, e, u), lambda) - loss(axpy(x, -e, u), lambda)) / Double(2 * e)
        let alongW = (loss(x, axpy(lambda, e, w)) - loss(x, axpy(lambda, -e, w))) / Double(2 * e)
        #expect(abs(alongU) > floor && abs(alongW) > floor)
        #expect(abs(dot(value.inputDerivative, u) - alongU) < tolerance * abs(alongU), "\(distance): \(dot(value.inputDerivative, u)) vs \(alongU)")
        #expect(abs(dot(value.labelLogitDerivative!, w) - alongW) < tolerance * abs(alongW))
    }

    @Test(arguments: [GradientDistance.squaredEuclidean, .cosine])
    func matchingLossDerivative(distance: GradientDistance) throws {
        let net = try Self.network(seed: 4)
        let batch = 2
        let target = net.gradients(input: random(batch * net.inputSize, seed: 20), batch: batch, labels: .hard([1, 3])).gradients
        Self.checkMatchingLoss(net, distance, observed: ObservedGradient(tensors: target), batch: batch, seed: 21,
                               epsilon: 3e-3, floor: 1e-4, tolerance: 1e-2)
    }

    /// Π of `LowRankObservation` is an orthogonal projection (idempotent, self-adjoint), and the
    /// projected matching losses have the derivative the attacks use: Π applied to the derivative
    /// with respect to Π(g).
    @Test(arguments: [GradientDistance.squaredEuclidean, .cosine])
    func projectedMatchingLossDerivative(distance: GradientDistance) throws {
        let net = try Self.network(seed: 5)
        let shapes = net.parameterShapes
        let projections: [LowRankObservation?] = shapes.enumerated().map { index, shape in
            guard shape.count == 2 else { return nil }
            let (n, m, r) = (shape[0], shape[1], 2)
            let p = PowerSGDWorkerView.gramSchmidt(random(n * r, seed: 60 + UInt64(index)), rows: n, columns: r).basis
            let q = PowerSGDWorkerView.gramSchmidt(random(m * r, seed: 70 + UInt64(index)), rows: m, columns: r).basis
            return LowRankObservation(rows: n, columns: m, rank: r, pHat: p, qBasis: q)
        }
        let a = random(shapes[0].reduce(1, *), seed: 80), b = random(a.count, seed: 81)
        let pi = try #require(projections[0])
        #expect(relativeError(pi.project(pi.project(a)), pi.project(a)) < 1e-4)
        #expect(abs(dot(pi.project(a), b) - dot(a, pi.project(b))) < 1e-4 * abs(dot(pi.project(a), b)))
        #expect(relativeError(pi.project(a), a) > 0.1)

        let batch = 2
        let target = net.gradients(input: random(batch * net.inputSize, seed: 82), batch: batch, labels: .hard([0, 4])).gradients
        let observed = ObservedGradient(tensors: target.indices.map { projections[$0]?.project(target[$0]) ?? target[$0] },
                                        projections: projections)
        Self.checkMatchingLoss(net, distance, observed: observed, batch: batch, seed: 83, epsilon: 3e-3, floor: 1e-5, tolerance: 1e-2)
    }

    /// The mirror computes the same parameter gradient as the project's `Classifier`.
    @Test func mirrorMatchesTheClassifiersGradient() throws {
        let mlp = MLP.make(inputShape: [1, 4, 4], hidden: [9], classes: 6, seed: 11)
        let net = try GradientMap(mirroring: mlp)
        let x = random(2 * 16, seed: 12)
        mlp.zeroGradients()
        _ = try mlp.lossAndGradients(input: try Tensor(shape: [2, 1, 4, 4], scalars: x), labels: [2, 5])
        let ours = net.gradients(input: x, batch: 2, labels: .hard([2, 5])).gradients
        for (a, p) in zip(ours, mlp.parameters) { #expect(relativeError(a, p.gradient.scalars) < 1e-5) }
    }

    /// LeNet (convolutions, pooling, ReLU, linear): the matching loss's input derivative against
    /// central differences, as for the MLP.
    @Test func leNetMatchingLossDerivative() throws {
        let net = try LeNet.make(channels: 1, size: 28, classes: 10, seed: 5)
        let batch = 2
        let target = net.gradients(input: random(batch * net.inputSize, seed: 30), batch: batch, labels: .hard([4, 7])).gradients
        let observed = ObservedGradient(tensors: target)
        let x = random(batch * net.inputSize, seed: 31)
        for distance in [GradientDistance.squaredEuclidean, .cosine] {
            let value = net.evaluate(input: x, batch: batch, labels: .hard([1, 7])) { distance.valueAndDirection($0, observed).direction }
            func loss(_ x: [Float]) -> Double {
                Double(distance.valueAndDirection(net.gradients(input: x, batch: batch, labels: .hard([1, 7])).gradients, observed).value)
            }
            let u = random(x.count, seed: 32)
            let e: Float = 1e-3
            let along = (loss(axpy(x, e, u)) - loss(axpy(x, -e, u))) / Double(2 * e)
            #expect(abs(along) > 1e-5)
            #expect(abs(dot(value.inputDerivative, u) - along) < 2e-2 * abs(along), "\(distance): \(dot(value.inputDerivative, u)) vs \(along)")
        }
    }

    /// The DLG paper's network (strided convolutions, sigmoids, linear head), small images.
    @Test func sigmoidLeNetMatchingLossDerivative() throws {
        let net = try SigmoidLeNet.make(channels: 1, size: 12, classes: 10, seed: 6)
        #expect(net.layers.contains { $0 is SigmoidLayer })
        let batch = 2
        let target = net.gradients(input: random(batch * net.inputSize, seed: 40), batch: batch, labels: .hard([2, 9])).gradients
        for distance in [GradientDistance.squaredEuclidean, .cosine] {
            Self.checkMatchingLoss(net, distance, observed: ObservedGradient(tensors: target), batch: batch, seed: 41,
                                   epsilon: 1e-3, floor: 1e-5, tolerance: 2e-2)
        }
    }

    @Test func modelsWithoutSecondOrderPassesAreRefusedByLayer() throws {
        let resnet = try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 8, baseWidth: 4, normalization: .group,
                                      seed: 1, threads: 1)
        #expect(throws: InversionError.self) { try GradientMap(mirroring: resnet) }
    }
}
