import XCTest
@testable import Training

final class QSGDBoundsStudyTests: XCTestCase {
    /// The shipped quantizer's measured non-zeros and variance agree with the closed forms
    /// (within 5 standard errors), and the L2 cells respect Lemma 3.1's bounds. A decoder that
    /// returned zeros (0 non-zeros, variance 1) or a biased rounding would miss the closed forms.
    func testMeasuredMeansMatchTheClosedFormsAndTheL2Bounds() throws {
        let study = QSGDBoundsStudy(distributions: [.gaussian, .sparse, .heavyTailed], dimensions: [256],
                                    levels: [1, 4, 64], trials: 200, seed: 3)
        let rows = try study.run()
        XCTAssertEqual(rows.count, 3 * 3 * 2)
        XCTAssertLessThan(QSGDBoundsStudy.largestDeviation(rows), 5)
        for r in rows {
            XCTAssertGreaterThan(r.measuredNonzeros, 0, "\(r)")
            XCTAssertEqual(r.measuredNonzeros, r.expectedNonzeros, accuracy: 5 * r.nonzerosStandardError + 1e-9, "\(r)")
            guard r.scaling == "l2" else { continue }
            XCTAssertLessThanOrEqual(r.expectedNonzeros, r.nonzerosBound, "\(r)")
            XCTAssertLessThanOrEqual(r.expectedRelativeVariance, r.varianceBound, "\(r)")
        }
    }

    /// Equal magnitudes at s = 1 under the L2 scale: xᵢ = 1/√n, so E‖Q‖₀ = √n and the variance is
    /// (n − √n)/√n·… = √n − 1 relative to ‖v‖²; the bounds are 1 + √n and √n.
    func testClosedFormsForEqualMagnitudes() {
        let v = [Float](repeating: 0.5, count: 256)
        let e = QSGDBoundsStudy.expectations(v, levels: 1, scaling: .l2)
        XCTAssertEqual(e.nonzeros, 16, accuracy: 1e-9)
        XCTAssertEqual(e.nonzerosBound, 17)
        XCTAssertEqual(e.relativeVariance, 15, accuracy: 1e-9)
        XCTAssertEqual(e.varianceBound, 16)
        // The max scale puts every element on the top level: exact, dense.
        let m = QSGDBoundsStudy.expectations(v, levels: 1, scaling: .max)
        XCTAssertEqual(m.nonzeros, 256)
        XCTAssertEqual(m.relativeVariance, 0)
    }
}
