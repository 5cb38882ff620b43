import Testing
@testable import Training

@Suite struct ComparisonTableTests {
    static func runs() throws -> [RunRecord] {
        [try SyntheticRuns.run(reducer: "sgd", payload: 4_000_000, evaluations: [(20, 0.6), (40, 0.7)]),
         try SyntheticRuns.run(reducer: "qsgd(levels=64,bucket=512)", payload: 1_000_000,
                               evaluations: [(20, 0.65), (40, 0.75)])]
    }

    @Test func markdownHasOneRowPerRunAndTheHandNumbers() throws {
        let table = ComparisonTable(runs: try Self.runs(), projection: SyntheticRuns.projection, target: 0.7)
        let lines = table.markdown().split(separator: "\n").map(String.init)
        #expect(lines.count == 2 + 2)
        let columns = lines.map { $0.split(separator: "|", omittingEmptySubsequences: false).count }
        #expect(Set(columns) == [10 + 2])  // 10 cells, plus the empty strings outside the outer pipes
        #expect(lines[0].contains("projected time/step (10gbit, W=4)"))
        #expect(lines[0].contains("time to 70.00% (measured)"))
        let sgd = lines[2].split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        // SGD: 4 MB payload, 2·3/4 · 4 MB = 6 MB sent; ratio 4 MB / 4 MB; measured 0.135 s;
        // projected 0.125 + 60 µs + 6e6/1.25e9 s = 0.12986 s; 0.7 first reached after 40 steps.
        #expect(sgd == ["sgd", "accuracy", "70.00%", "4.00 MB", "6.00 MB", "1.00×", "135 ms", "130 ms",
                        "5.40 s", "5.19 s"])
        let qsgd = lines[3].split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        // 1 MB: ratio 4; projected 0.125 + 0.00126 = 0.12626 s; 0.7 reached after 40 steps (0.65 at 20).
        #expect(qsgd == ["qsgd(levels=64,bucket=512)", "accuracy", "75.00%", "1.00 MB", "1.50 MB", "4.00×",
                         "135 ms", "126 ms", "5.40 s", "5.05 s"])
    }

    @Test func csvHasTheDocumentedColumnsAndRawNumbers() throws {
        let table = ComparisonTable(runs: try Self.runs(), projection: SyntheticRuns.projection, target: 0.65)
        let lines = table.csv().split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0] == ComparisonTable.csvHeader.joined(separator: ","))
        #expect(lines[1].split(separator: ",", omittingEmptySubsequences: false).count == ComparisonTable.csvHeader.count)
        let sgd = lines[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(sgd[0] == "sgd" && sgd[1] == "accuracy" && sgd[2] == "0.7")
        #expect(sgd[3] == "4000000" && sgd[4] == "6000000" && sgd[5] == "1")
        #expect(abs(try #require(Double(sgd[6])) - 0.135) < 1e-12)
        let projected: Double = 0.125 + 60e-6 + 6e6 / 1.25e9
        #expect(abs(try #require(Double(sgd[7])) - projected) < 1e-12)
        #expect(sgd[8] == "10gbit" && sgd[9] == "4" && sgd[10] == "0.65" && sgd[11] == "40")
        // The reducer name holds commas: the field is quoted, and the row reached 0.65 at step 20.
        #expect(lines[2].hasPrefix("\"qsgd(levels=64,bucket=512)\",accuracy,0.75,1000000,1500000,4,"))
        #expect(lines[2].contains(",10gbit,4,0.65,20,"))
        let fields = lines[2].split(separator: ",").map(String.init)
        #expect(abs(try #require(Double(fields[fields.count - 2])) - 20 * 0.135) < 1e-12)
        #expect(abs(try #require(Double(fields[fields.count - 1])) - 20 * 0.12626) < 1e-12)
    }

    @Test func withoutTargetOrEvaluationsTheCellsSayNotApplicable() throws {
        let run = try SyntheticRuns.run(reducer: "a|b", payload: 0, steps: 2, evaluations: [])
        let markdown = ComparisonTable(runs: [run], projection: SyntheticRuns.projection).markdown()
        let row = markdown.split(separator: "\n")[2]
        #expect(row.hasPrefix("| a\\|b | — | — | 0 B | 0 B | — |"))
        let csv = ComparisonTable(runs: [run], projection: SyntheticRuns.projection).csv()
        #expect(csv.split(separator: "\n")[1].hasPrefix("a|b,,,0,0,,"))
        #expect(csv.split(separator: "\n")[1].hasSuffix(",10gbit,4,,,,"))
    }

    @Test func numberFormats() {
        #expect(TextFormatting.bytes(512) == "512 B")
        #expect(TextFormatting.bytes(1_234_567) == "1.23 MB")
        #expect(TextFormatting.bytes(999_999) == "1.00 MB")
        #expect(TextFormatting.seconds(0.000850) == "850 µs")
        #expect(TextFormatting.seconds(0.0123) == "12.3 ms")
        #expect(TextFormatting.seconds(1.5) == "1.50 s")
        #expect(TextFormatting.seconds(300) == "5.00 min")
        #expect(TextFormatting.csvField("a,\"b\"") == "\"a,\"\"b\"\"\"")
        #expect(TextFormatting.html("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;")
    }
}
