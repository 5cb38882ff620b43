import Dispatch

/// Intra-operation parallelism: splits `0..<count` into `threads` contiguous ranges run with
/// `DispatchQueue.concurrentPerform` (a clean 2× on this machine's two cores for
/// compute-bound loops, SWIFT-NOTES.md). With `threads == 1` the body runs on the calling
/// thread, which is the default when training workers are themselves threads.
/// Each range must write memory no other range writes.
@inlinable
func parallelRanges(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    let parts = min(max(1, threads), count)
    if parts <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let lower = count * part / parts
            let upper = count * (part + 1) / parts
            body(lower..<upper)
        }
    }
}
