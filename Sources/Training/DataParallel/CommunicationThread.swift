import Foundation

/// One worker's communication thread (`--overlap`): runs the tasks it is given one at a time, in
/// the order given, while the worker's main thread goes on with the backward pass.
///
/// A dedicated `Thread` rather than a dispatch queue: every task blocks in collectives until the
/// other workers arrive, and with the in-process backend all workers' tasks would otherwise
/// share, and could exhaust, one process-wide pool of dispatch threads.
///
/// The first task that throws stops the rest of the queue (they would use a reducer whose state
/// the failed bucket left half-updated); `join` waits until the queue is idle and rethrows that
/// error, the same value, on the calling thread. The lock hand-over in `submit` and `join`
/// orders every write of a task before the joining thread's reads.
final class CommunicationThread {
    private let condition = NSCondition()
    private var tasks: [() throws -> Void] = []
    private var busy = false
    private var failure: Error?
    private var stopping = false

    init(name: String, stackSize: Int = 64 << 20) {
        let thread = Thread { [self] in serve() }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    /// Queues `task` behind those already given.
    func submit(_ task: @escaping () throws -> Void) {
        condition.lock()
        tasks.append(task)
        condition.signal()
        condition.unlock()
    }

    /// Waits until every queued task has run (or been skipped after a failure); throws the first
    /// task's error, if any, and forgets it.
    func join() throws {
        condition.lock()
        while busy || !tasks.isEmpty { condition.wait() }
        let error = failure
        failure = nil
        condition.unlock()
        if let error { throw error }
    }

    /// Ends the thread once the queue is empty; call once, after the last `join`.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func serve() {
        condition.lock()
        while true {
            while tasks.isEmpty && !stopping { condition.wait() }
            if tasks.isEmpty { break }
            let task = tasks.removeFirst()
            let skip = failure != nil
            busy = true
            condition.unlock()
            var error: Error?
            if !skip {
                do { try task() } catch let thrown { error = thrown }
            }
            condition.lock()
            busy = false
            if let error, failure == nil { failure = error }
            condition.broadcast()
        }
        condition.unlock()
    }
}
