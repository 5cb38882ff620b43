import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import Testing
@testable import Training

/// The principal angles and the subspace probe that studies 2 and 3 rest on.
@Suite struct SubspaceTrackingTests {
    /// An n×r orthonormal basis (Householder QR of a normal matrix), row-major.
    static func basis(rows n: Int, rank r: Int, seed: UInt64) throws -> Tensor {
        var u = Philox(seed: seed, stream: 11).normalTensor(shape: [n, r])
        try Orthonormalization.householder.apply(&u)
        return u
    }

    @Test func anglesAreZeroForTheSameSubspaceAndRightForOrthogonalOnes() throws {
        let n = 12
        let a = try Self.basis(rows: n, rank: 3, seed: 1)
        // The same subspace in another basis: columns mixed by a rotation in the (0, 1) plane, and negated.
        var b = a
        let (c, s): (Float, Float) = (cos(0.7), sin(0.7))
        for i in 0..<n {
            let (x, y) = (a.scalars[i * 3], a.scalars[i * 3 + 1])
            b.scalars[i * 3] = c * x - s * y
            b.scalars[i * 3 + 1] = s * x + c * y
            b.scalars[i * 3 + 2] = -a.scalars[i * 3 + 2]
        }
        for angle in try PrincipalAngles.angles(a.scalars, b.scalars, rows: n, rank: 3) { #expect(abs(angle) < 1e-3) }
        // Coordinate subspaces: span(e0, e1) against span(e2, e3) is orthogonal; against span(e0, e2) one angle is 0, one π/2.
        func coordinates(_ axes: [Int]) -> [Float] {
            var m = [Float](repeating: 0, count: n * axes.count)
            for (k, axis) in axes.enumerated() { m[axis * axes.count + k] = 1 }
            return m
        }
        #expect(abs(try PrincipalAngles.largest(coordinates([0, 1]), coordinates([2, 3]), rows: n, rank: 2) - .pi / 2) < 1e-6)
        let mixed = try PrincipalAngles.angles(coordinates([0, 1]), coordinates([0, 2]), rows: n, rank: 2)
        #expect(abs(mixed[0]) < 1e-6 && abs(mixed[1] - .pi / 2) < 1e-6, "\(mixed)")
        // A known angle: e0 against cos θ e0 + sin θ e1.
        var tilted = [Float](repeating: 0, count: n)
        tilted[0] = cos(0.3); tilted[1] = sin(0.3)
        #expect(abs(try PrincipalAngles.largest(coordinates([0]), tilted, rows: n, rank: 1) - 0.3) < 1e-5)
        // A zero column spans nothing: it counts as orthogonal.
        #expect(abs(try PrincipalAngles.largest(coordinates([0]), [Float](repeating: 0, count: n), rows: n, rank: 1) - .pi / 2) < 1e-6)
    }

    /// Two workers whose gradients average to U·diag(σ)·Vᵀ (each worker adds opposite noise):
    /// with enough power iterations PowerSGD finds U_r (θ ≈ 0, error ratio ≈ 1), with one step
    /// from a fresh random Q it does not; the probe sees the average, not one worker's matrix.
    @Test func probeMeasuresTheAveragedGradientsSubspace() throws {
        let (n, m, r) = (24, 18, 2)
        let spectrum: [Float] = [4, 3, 1, 0.8, 0.6, 0.4, 0.2, 0.1]
        let u = try Self.basis(rows: n, rank: spectrum.count, seed: 2), v = try Self.basis(rows: m, rank: spectrum.count, seed: 3)
        var scaled = u
        for i in 0..<n { for j in spectrum.indices { scaled.scalars[i * spectrum.count + j] *= spectrum[j] } }
        let mean = try matmul(scaled, v, transposeB: .transposed)
        let noise = Philox(seed: 4, stream: 5).normalTensor(shape: [n, m], standardDeviation: 3)
        func measure(_ options: PowerSGD.Options) throws -> [SubspaceProbe.Measurement] {
            let probe = SubspaceProbe(workers: 2, period: 1)
            _ = try InProcessGroup.run(workers: 2) { group in
                var reducer = try SubspaceProbedPowerSGD(options, probe: probe)
                let sign: Float = group.rank == 0 ? 1 : -1
                var g = [try Tensor(shape: [n, m], scalars: zip(mean.scalars, noise.scalars).map { $0 + sign * $1 }), Tensor(shape: [5], repeating: 1)]
                _ = try reducer.reduce(&g, over: group)
            }
            return try probe.measurements()
        }
        let exact = try measure(PowerSGD.Options(rank: r, errorFeedback: .off, warmStart: false, powerIterations: 30))
        #expect(exact.count == 1 && exact[0].tensor == 0 && exact[0].shape == [n, m] && exact[0].step == 0)
        #expect(exact[0].largestAngle < 0.01, "θ = \(exact[0].largestAngle)")
        let tail = spectrum.dropFirst(r).reduce(0) { $0 + Double($1 * $1) }, total = spectrum.reduce(0) { $0 + Double($1 * $1) }
        #expect(abs(exact[0].optimalRelativeError - (tail / total).squareRoot()) < 1e-4)
        #expect(abs(exact[0].powerRelativeError / exact[0].optimalRelativeError - 1) < 1e-3)
        let single = try measure(PowerSGD.Options(rank: r, errorFeedback: .off, warmStart: false, seed: 1))
        #expect(single[0].largestAngle > 10 * exact[0].largestAngle + 0.01, "θ = \(single[0].largestAngle)")
        #expect(single[0].powerRelativeError > 1.01 * single[0].optimalRelativeError)
    }
}
