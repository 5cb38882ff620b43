import Testing
@testable import powersgd

/// The progress line, on a hand-driven clock.
@Suite struct TerminalOutputTests {
    /// Examples per second come from step times: the interval that held an evaluation is dropped.
    @Test func throughputExcludesEvaluationTime() {
        var now = 0.0
        let output = TerminalOutput(isTerminal: false, clock: { now })
        for step in 1...3 {
            now += 1  // one second per step
            output.progress(step: step, total: 10, epoch: 0, loss: 1, examples: 100)
            if step == 2 {
                now += 30  // a 30-second evaluation after step 2
                output.evaluationFinished()
            }
        }
        #expect(output.lastProgress.contains(" 100 examples/s  ETA 7s"), "\(output.lastProgress)")
    }
}
