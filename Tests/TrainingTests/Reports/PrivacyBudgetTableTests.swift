import Testing
@testable import Training

@Suite struct PrivacyBudgetTableTests {
    /// Two reducers, ε = 8 and 1 (given out of order) and no DP, two seeds; hand-checkable values.
    static let table = PrivacyBudgetTable(entries: [
        .init(reducer: "sgd", budget: 8, seed: 1, finalValue: 0.80, epsilonSpent: 7.99),
        .init(reducer: "powersgd(rank=1)", budget: 8, seed: 1, finalValue: 0.76, epsilonSpent: 7.99),
        .init(reducer: "sgd", budget: 1, seed: 1, finalValue: 0.70, epsilonSpent: 0.99),
        .init(reducer: "powersgd(rank=1)", budget: 1, seed: 1, finalValue: 0.60, epsilonSpent: 0.99),
        .init(reducer: "sgd", budget: nil, seed: 1, finalValue: 0.90, epsilonSpent: nil),
        .init(reducer: "powersgd(rank=1)", budget: nil, seed: 1, finalValue: 0.85, epsilonSpent: nil),
        .init(reducer: "sgd", budget: 8, seed: 2, finalValue: 0.84, epsilonSpent: 7.99),
        .init(reducer: "powersgd(rank=1)", budget: 8, seed: 2, finalValue: 0.78, epsilonSpent: 7.99),
        .init(reducer: "sgd", budget: 1, seed: 2, finalValue: 0.72, epsilonSpent: 0.99),
        .init(reducer: "powersgd(rank=1)", budget: 1, seed: 2, finalValue: 0.66, epsilonSpent: 0.99),
    ], metric: .accuracy)

    @Test func budgetsAreSortedWithTheRunWithoutDPLastAndReducersKeepTheirOrder() {
        #expect(Self.table.budgets == [1, 8, nil])
        #expect(Self.table.reducers == ["sgd", "powersgd(rank=1)"])
    }

    @Test func cellsAreMeanSampleDeviationAndDifferenceToSGD() throws {
        let table = Self.table
        let rank1 = try #require(table.cell("powersgd(rank=1)", 1))
        #expect(abs(rank1.mean - 0.63) < 1e-12)
        // Sample deviation of 0.60, 0.66: |0.03| · √2.
        #expect(abs(try #require(rank1.standardDeviation) - 0.03 * 2.0.squareRoot()) < 1e-12)
        #expect(abs(try #require(rank1.differenceToBaseline) - (0.63 - 0.71)) < 1e-12)
        #expect(rank1.seeds == 2)
        let sgd = try #require(table.cell("sgd", 8))
        #expect(abs(sgd.mean - 0.82) < 1e-12)
        #expect(sgd.differenceToBaseline == nil)
        // One seed without DP: no spread.
        let noDP = try #require(table.cell("powersgd(rank=1)", nil))
        let noDPDifference = try #require(noDP.differenceToBaseline)
        #expect(noDP.standardDeviation == nil && noDP.seeds == 1 && abs(noDPDifference + 0.05) < 1e-12)
        #expect(table.cell("topk", 1) == nil)
    }

    @Test func markdownShowsPercentCellsUnderBudgetTitles() {
        let lines = Self.table.markdown().split(separator: "\n").map(String.init)
        #expect(lines[0] == "| reducer | ε = 1 | ε = 8 | no DP |")
        #expect(lines[2] == "| sgd | 71.00 ± 1.41 | 82.00 ± 2.83 | 90.00 |")
        #expect(lines[3] == "| powersgd(rank=1) | 63.00 ± 4.24 (-8.00) | 77.00 ± 1.41 (-5.00) | 85.00 (-5.00) |")
        #expect(Self.table.caption.contains("over 2 seeds"))
    }

    @Test func csvHasOneLinePerRunWithAnEmptyBudgetWithoutDP() {
        let lines = Self.table.csv().split(separator: "\n").map(String.init)
        #expect(lines.count == 1 + 10)
        #expect(lines[0] == "reducer,budget_epsilon,seed,metric,final_value,epsilon_spent")
        #expect(lines[1] == "sgd,8,1,accuracy,0.8,7.99")
        #expect(lines[5] == "sgd,,1,accuracy,0.9,")
    }

    @Test func chartHasTheMeansAtTheFiniteBudgets() throws {
        let chart = Self.table.chart()
        #expect(chart.series.map(\.name) == ["sgd", "powersgd(rank=1)"])
        let points = chart.series[1].points
        #expect(points.map(\.x) == [1, 8])
        #expect(abs(points[0].y - 0.63) < 1e-12 && abs(points[1].y - 0.77) < 1e-12)
        #expect(chart.svg().contains("vs privacy budget"))
    }
}
