import XCTest
@testable import Training

final class PowerSGDCounterexampleTests: XCTestCase {
    /// From the constructed start PowerSGD stops away from the optimum, at a point that is not
    /// stationary, while PowerSGD+ and the exact rank-1 SVD get within 1e-3 of it. A reducer that
    /// returned zeros would fail the PowerSGD+ and SVD bounds; an exact all-reduce would fail the
    /// PowerSGD one.
    func testPowerSGDStallsWherePowerSGDPlusAndTheSVDConverge() throws {
        let study = PowerSGDCounterexample.short
        let powerSGD = try study.run(.powerSGD), plus = try study.run(.powerSGDPlus), svd = try study.run(.exactSVD)
        let stall = try XCTUnwrap(powerSGD.points.last)
        XCTAssertGreaterThan(stall.distance, 0.5)
        XCTAssertGreaterThan(stall.gradientNorm, 0.3)
        XCTAssertNil(powerSGD.firstStep(below: 0.1))
        XCTAssertLessThan(try XCTUnwrap(plus.points.last).distance, 1e-3)
        XCTAssertLessThan(try XCTUnwrap(svd.points.last).distance, 1e-3)
        // The stall is at the minimizer over x₁₁ alone: x₀₀ = −c, x₁₁ = c², distance c·√(1 + c²).
        let c = Double(study.coupling)
        XCTAssertEqual(stall.distance, c * (1 + c * c).squareRoot(), accuracy: 1e-5)
    }

    /// The stall needs the exact start: a start perturbed above float rounding converges, and so
    /// does a rank-1 gradient orthogonal to Q₀ (rounding or the zero-column redraw recovers it).
    func testOtherStartsConverge() throws {
        let study = PowerSGDCounterexample.short
        for start in [PowerSGDCounterexample.Start.coupled(perturbation: 1e-4), .rankOneOrthogonalToQ0] {
            let run = try study.run(.powerSGD, from: start)
            XCTAssertLessThan(try XCTUnwrap(run.points.last).distance, 1e-3, start.label)
            XCTAssertGreaterThan(try XCTUnwrap(run.points.first).distance, 0.01, start.label)
        }
    }

    /// The rank-1 gradient M = u·vᵀ orthogonal to Q₀: vᵀQ₀ is 0 in exact arithmetic, and in float
    /// it is 0 or a rounding residue, depending on the kernel's order of roundings (the products
    /// q₁·q₀ and −q₀·q₁ cancel exactly when each is rounded before the add; an FMA keeps the first
    /// one's rounding error). With 0, step 1 sends nothing; the zero Q̄ is redrawn and from step
    /// 2 on PowerSGD moves as gradient descent does (a full rank-1 step, the distance times
    /// 1 − 2γ after the error memory's first return). With a residue ε, P = ε·u has the exact
    /// direction of u, so step 1 already is gradient descent's step (the distance times 1 − γ).
    func testOrthogonalRankOneStartLosesAtMostOneStep() throws {
        let study = PowerSGDCounterexample.short
        let run = try study.run(.powerSGD, from: .rankOneOrthogonalToQ0)
        let gamma = Double(study.learningRate)
        if run.points[0].distance == run.initialDistance {
            XCTAssertEqual(run.points[1].distance, run.initialDistance * (1 - 2 * gamma), accuracy: 1e-5)
            XCTAssertEqual(run.points[2].distance, run.points[1].distance * (1 - gamma), accuracy: 1e-5)
        } else {
            for k in 0..<3 {
                XCTAssertEqual(run.points[k].distance, run.initialDistance * pow(1 - gamma, Double(k + 1)), accuracy: 1e-5, "step \(k + 1)")
            }
        }
    }

    /// Same seed, same numbers.
    func testDeterministic() throws {
        let study = PowerSGDCounterexample.short
        let a = try study.run(.powerSGDPlus), b = try study.run(.powerSGDPlus)
        XCTAssertEqual(a.points.map(\.distance), b.points.map(\.distance))
    }
}
