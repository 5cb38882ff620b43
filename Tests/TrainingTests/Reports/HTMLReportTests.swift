import Foundation
import Testing
@testable import Training

@Suite struct HTMLReportTests {
    static let hostile = "<script>alert(\"x\")</script>"

    static func report() throws -> HTMLReport {
        let runs = [try SyntheticRuns.run(reducer: "sgd", payload: 4_000_000, evaluations: [(10, 0.5), (20, 0.6), (40, 0.7)]),
                    try SyntheticRuns.run(reducer: "powersgd(rank=2)", payload: 100_000,
                                          evaluations: [(10, 0.45), (20, 0.62), (40, 0.71)]),
                    try SyntheticRuns.run(reducer: hostile, payload: 50_000, evaluations: [(10, 0.3), (40, 0.4)])]
        return HTMLReport(title: "Compare & <contrast>", runs: runs, projection: SyntheticRuns.projection, target: 0.6)
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test func documentIsWellFormedEnough() throws {
        let html = try Self.report().html()
        // For scripts/check-report.sh: POWERSGD_REPORT_OUTPUT=path writes this synthetic report there.
        if let path = ProcessInfo.processInfo.environment["POWERSGD_REPORT_OUTPUT"] {
            try html.write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(Self.count("<html", in: html) == 1 && Self.count("</html>", in: html) == 1)
        // Three charts for an accuracy comparison: vs projected time, vs bytes, loss vs step.
        #expect(Self.count("<svg", in: html) == 3)
        #expect(Self.count("</svg>", in: html) == 3)
        for tag in ["g", "text", "table", "tr", "figure", "title"] {
            #expect(Self.count("<\(tag)>", in: html) + Self.count("<\(tag) ", in: html) == Self.count("</\(tag)>", in: html),
                    "unbalanced <\(tag)>")
        }
        // One polyline per reducer per chart, with markers only on the evaluation charts.
        #expect(Self.count("<polyline", in: html) == 9)
        #expect(Self.count("<circle", in: html) == 2 * (3 + 3 + 2))
        // No scripts and nothing loaded from elsewhere.
        #expect(!html.contains("<script"))
        #expect(!html.contains("src="))
        #expect(!html.contains("http://") || Self.count("http://", in: html) == Self.count("xmlns=\"http://www.w3.org/2000/svg\"", in: html))
    }

    @Test func everyReducerIsInEveryLegendAndTextIsEscaped() throws {
        let report = try Self.report()
        let html = report.html()
        #expect(html.contains("<title>Compare &amp; &lt;contrast&gt;</title>"))
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
        for chart in report.charts {
            let svg = chart.svg()
            let legend = try #require(svg.range(of: "<g class=\"legend\">")).upperBound
            for name in ["sgd", "powersgd(rank=2)", escaped] {
                #expect(svg[legend...].contains(">\(name)</text>"), "\(name) missing from the legend of \(chart.title)")
            }
        }
        #expect(html.contains("<td>\(escaped)</td>"))
    }

    @Test func axesHaveTicksAndLabels() throws {
        let chart = try Self.report().charts[1]  // accuracy vs bytes, log axis
        let svg = chart.svg()
        #expect(svg.contains(">cumulative bytes sent per worker (W as measured, log scale)</text>"))
        // SGD sends 6 MB per step: 60 MB after 10 steps, 240 MB after 40; the hostile run 75 kB per step
        // from 750 kB: decades 100 kB … 1 GB.
        for tick in ["100 kB", "1.00 MB", "10.0 MB", "100 MB", "1.00 GB"] { #expect(svg.contains(">\(tick)</text>")) }
        for tick in ["30%", "40%", "50%", "60%", "70%"] { #expect(svg.contains(">\(tick)</text>")) }
    }

    @Test func linearTicksAreRoundAndCoverTheData() {
        let range = AxisRange(values: [0.13, 0.97], scale: .linear)
        #expect(range.ticks.first! <= 0.13 && range.ticks.last! >= 0.97)
        #expect(range.ticks.count >= 4 && range.ticks.count <= 8)
        let steps = zip(range.ticks.dropFirst(), range.ticks).map { $0 - $1 }
        #expect(steps.allSatisfy { abs($0 - 0.2) < 1e-12 })
        let flat = AxisRange(values: [5, 5], scale: .linear)
        #expect(flat.low < 5 && flat.high > 5)
        let log2 = AxisRange(values: [1, 64], scale: .logarithmic(base: 2))
        #expect(log2.ticks == [1, 2, 4, 8, 16, 32, 64])
    }

    @Test func emptyChartSaysSo() {
        let chart = LineChart(title: "t", x: .init("x"), y: .init("y"), series: [.init(name: "a", points: [])])
        #expect(chart.svg().contains("no data to plot"))
    }
}
