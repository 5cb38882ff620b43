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

    /// Memory copy bandwidth in GB/s (bytes read + bytes written per second, summed over the
    /// threads) of `threads` threads each copying its own `bytesPerThread`-sized buffer at the same
    /// time (64 MB by default, far beyond the caches): the limit of any memory-bound kernel on this
    /// machine, and with several threads the limit when they share the memory bus. Median of 9 runs
    /// after 2 warm-ups, a run ending when the last thread's copy does.
    public static func copyBandwidth(threads: Int = 1, bytesPerThread: Int = 64 << 20) -> Double {
        let n = bytesPerThread / MemoryLayout<Float>.stride, threads = max(1, threads)
        let buffers = CopyBuffers(threads: threads, count: n)
        defer { buffers.deallocate() }
        let seconds = medianSeconds(repeats: 9, warmup: 2) {
            if threads == 1 { buffers.copy(0) } else { DispatchQueue.concurrentPerform(iterations: threads, execute: buffers.copy) }
        }
        return 2 * Double(threads * n * MemoryLayout<Float>.stride) / seconds / 1e9
    }

    /// One source and one target buffer per thread; each thread touches only its own pair.
    private struct CopyBuffers: @unchecked Sendable {
        let pairs: [(source: UnsafeMutablePointer<Float>, target: UnsafeMutablePointer<Float>)]
        let count: Int

        init(threads: Int, count: Int) {
            self.count = count
            pairs = (0..<threads).map { _ in
                let source = UnsafeMutablePointer<Float>.allocate(capacity: count)
                let target = UnsafeMutablePointer<Float>.allocate(capacity: count)
                source.initialize(repeating: 1, count: count)
                target.initialize(repeating: 0, count: count)
                return (source, target)
            }
        }

        func copy(_ thread: Int) { pairs[thread].target.update(from: pairs[thread].source, count: count) }

        func deallocate() { for pair in pairs { pair.source.deallocate(); pair.target.deallocate() } }
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
