import Foundation
import Testing
@testable import Collectives

/// The in-process fp16 / bf16 all-reduce: fp32 accumulation in rank order, one rounding (RNE),
/// the same bits on every rank, 2 bytes per element in the byte counters.
@Suite struct HalfWidthAllReduceTests {
    /// Rank r's input: values spread over several binades whose sums need rounding in both formats.
    static func input(rank: Int, count: Int, format: HalfWidthFormat) -> [UInt16] {
        (0 ..< count).map { i in format.bits(Float(sin(Double(i &* (rank &+ 3)) * 0.7)) * Float(1 << (i % 9))) }
    }

    /// The documented result: widen, combine in fp32 in rank order, × 1/W for mean, round once.
    static func reference(_ inputs: [[UInt16]], format: HalfWidthFormat, operation: ReduceOperation) -> [UInt16] {
        let w = inputs.count
        return inputs[0].indices.map { i in
            var acc = format.float(inputs[0][i])
            for r in 1 ..< w {
                let x = format.float(inputs[r][i])
                acc = operation == .max ? (x > acc ? x : acc) : acc + x
            }
            if operation == .mean { acc *= 1 / Float(w) }
            return format.bits(acc)
        }
    }

    @Test(arguments: HalfWidthFormat.allCases, [1, 2, 3, 4])
    func resultIsTheFp32SumRoundedOnceOnEveryRank(format: HalfWidthFormat, workers: Int) throws {
        for n in [0, 1, 7, 100_003] {
            let results = try InProcessGroup.run(workers: workers) { group -> [[UInt16]] in
                try [ReduceOperation.sum, .mean, .max].map { operation in
                    var bits = Self.input(rank: group.rank, count: n, format: format)
                    group.traffic.beginStep()
                    try group.allReduce(&bits, format: format, operation: operation)
                    // 2 bytes per element, ring formula: 2 · (P − ⌊P/W⌋) each way, 0 for one worker.
                    let payload = 2 * n, ring = workers == 1 ? 0 : 2 * (payload - payload / workers)
                    let record = group.traffic.stepRecords[0]
                    #expect(record.kind == .allReduce && record.payloadBytes == payload)
                    #expect(record.bytesSent == ring && record.bytesReceived == ring)
                    return bits
                }
            }
            let inputs = (0 ..< workers).map { Self.input(rank: $0, count: n, format: format) }
            for (k, operation) in [ReduceOperation.sum, .mean, .max].enumerated() {
                let expected = Self.reference(inputs, format: format, operation: operation)
                for r in 0 ..< workers {
                    #expect(results[r][k] == expected, "\(format) \(operation) W=\(workers) n=\(n) rank \(r)")
                }
            }
        }
    }

    /// Rounding once differs from rounding each partial sum: a case where it shows (fp16).
    @Test func oneRoundingIsNotRoundingPerStep() throws {
        // 2048 + 1 + 1 in fp16 (spacing 2 above 2048): per-step rounding gives 2048 (ties to even
        // twice), one rounding of the exact 2050 gives 2050.
        let values: [Float] = [2048, 1, 1]
        let results = try InProcessGroup.run(workers: 3) { group -> UInt16 in
            var bits = [HalfWidthFormat.float16.bits(values[group.rank])]
            try group.allReduce(&bits, format: .float16, operation: .sum)
            return bits[0]
        }
        #expect(results.allSatisfy { HalfWidthFormat.float16.float($0) == 2050 })
    }

    @Test func differentFormatsAreAMismatchOnEveryRank() throws {
        let errors = try InProcessGroup.run(workers: 2) { group -> String in
            var bits = [UInt16](repeating: 0, count: 10)
            do {
                try group.allReduce(&bits, format: group.rank == 0 ? .float16 : .bfloat16, operation: .sum)
                return "no error"
            } catch { return "\(error)" }
        }
        let expected = "collective mismatch: rank 1 called allReduce.bfloat16.sum(10 elements) while rank 0 called allReduce.float16.sum(10 elements)"
        #expect(errors == [expected, expected])
    }

    /// The conversions agree with Swift's `Float16` on every fp16 pattern (both ways) and with
    /// RNE on a sweep of floats; bf16 widening is exact and its rounding is RNE on the top 16 bits.
    @Test func conversionsAreExactAndRoundToNearestEven() {
        for pattern in UInt16.min ... UInt16.max {
            let h = Float16(bitPattern: pattern)
            let wide = HalfWidthFormat.float16.float(pattern)
            #expect(wide.bitPattern == Float(h).bitPattern || (wide.isNaN && h.isNaN))
            if !h.isNaN { #expect(HalfWidthFormat.float16.bits(wide) == pattern) }
            #expect(HalfWidthFormat.bfloat16.float(pattern).bitPattern == UInt32(pattern) << 16)
        }
        var x: UInt32 = 0x0000_1234
        for _ in 0 ..< 50_000 {
            x = x &* 1_664_525 &+ 1_013_904_223
            let f = Float(bitPattern: x)
            if f.isNaN { continue }
            #expect(HalfWidthFormat.float16.bits(f) == Float16(f).bitPattern)
            // bf16 RNE: the nearer of the two neighbours, ties to the even one.
            let down = UInt16(x >> 16), up = down &+ 1
            let low = x & 0xFFFF
            let expected = low > 0x8000 || (low == 0x8000 && down & 1 == 1) ? up : down
            #expect(HalfWidthFormat.bfloat16.bits(f) == expected)
        }
    }
}
