import Dispatch

/// Timing helpers and the machine limits every benchmark reports its ratios against.
///
/// Benchmarks on a shared 2-core machine are noisy; they report the median of
/// several runs and divide by a limit measured in the same process run, so a
/// ratio holds even when absolute numbers drift.
public enum Benchmark {
    /// The median wall time in seconds of `repeats` runs of `body`, after `warmup` untimed runs.
    public static func medianSeconds(repeats: Int = 7, warmup: Int = 1, _ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Memory copy bandwidth in GB/s (bytes read + bytes written, per second) of one thread
    /// copying a `bytes`-sized buffer (64 MB by default, far beyond the caches): the limit
    /// of any memory-bound kernel on this machine.
    public static func copyBandwidth(bytes: Int = 64 << 20) -> Double {
        let n = bytes / MemoryLayout<Float>.stride
        let source = UnsafeMutablePointer<Float>.allocate(capacity: n)
        let target = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { source.deallocate(); target.deallocate() }
        source.initialize(repeating: 1, count: n)
        target.initialize(repeating: 0, count: n)
        let seconds = medianSeconds(repeats: 9, warmup: 2) { target.update(from: source, count: n) }
        return 2 * Double(n * MemoryLayout<Float>.stride) / seconds / 1e9
    }

    /// Read bandwidth in GB/s of one thread summing a `bytes`-sized buffer with `Vector.sum`:
    /// the limit of a kernel that only streams its input (a tall-skinny product at rank 1).
    public static func readBandwidth(bytes: Int = 64 << 20) -> Double {
        let values = [Float](repeating: 1, count: bytes / MemoryLayout<Float>.stride)
        var sink: Float = 0
        let seconds = values.withUnsafeBufferPointer { p in
            medianSeconds(repeats: 9, warmup: 2) { sink += Vector.sum(p) }
        }
        return sink.isNaN ? 0 : Double(bytes) / seconds / 1e9
    }
}
