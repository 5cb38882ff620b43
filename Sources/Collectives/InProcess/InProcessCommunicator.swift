import Dispatch

/// One rank's handle on an in-process group (see `InProcessGroup`).
final class InProcessCommunicator: Communicator {
    let rank: Int
    var size: Int { state.size }
    let traffic = TrafficLedger()
    private let state: GroupState
    /// Collectives this rank has entered (the timeout's message numbers them from 1).
    private var sequence = 0

    init(rank: Int, state: GroupState) {
        self.rank = rank
        self.state = state
    }

    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = buffer.count
        let all = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(
            operation: "allReduce.\(operation.rawValue)", count: n, root: -1, address: UnsafeMutableRawPointer(buffer.baseAddress)))
        let w = size
        if w > 1 && n > 0 {
            // Rank r owns chunk r: it sums that chunk over the W buffers in rank order and writes
            // the result into all W buffers (ReductionKernel). Chunks are disjoint, so the owners
            // work in parallel with no barrier between reading and writing.
            let buffers = all.map { $0.address!.assumingMemoryBound(to: Float.self) }
            let lo = n * rank / w, hi = n * (rank + 1) / w
            buffers.withUnsafeBufferPointer {
                ReductionKernel.reduceIntoAll($0, range: lo ..< hi, operation: operation)
            }
        }
        try state.close(rank: rank)  // no rank returns (or reuses its buffer) before every owner has written into it
        traffic.record(.ringAllReduce(count: n, workers: w, seconds: seconds(since: start)))
    }

    func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat, operation: ReduceOperation) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = bits.count
        let all = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(
            operation: "allReduce.\(format.rawValue).\(operation.rawValue)", count: n, root: -1,
            address: UnsafeMutableRawPointer(bits.baseAddress)))
        let w = size
        if w > 1 && n > 0 {
            // As for floats: rank r reduces chunk r (in fp32, rank order, one rounding) into every buffer.
            let buffers = all.map { $0.address!.assumingMemoryBound(to: UInt16.self) }
            let lo = n * rank / w, hi = n * (rank + 1) / w
            buffers.withUnsafeBufferPointer {
                ReductionKernel.reduceHalfIntoAll($0, range: lo ..< hi, format: format, operation: operation)
            }
        }
        try state.close(rank: rank)
        traffic.record(.ringAllReduce(count: n, workers: w, seconds: seconds(since: start), elementBytes: 2))
    }

    func allGather(_ message: [UInt8]) throws -> [[UInt8]] {
        let start = DispatchTime.now().uptimeNanoseconds
        return try message.withUnsafeBytes { own -> [[UInt8]] in
            let all = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(
                operation: "allGather", count: message.count, root: -1,
                address: UnsafeMutableRawPointer(mutating: own.baseAddress)))
            var result: [[UInt8]] = []
            result.reserveCapacity(size)
            for r in 0..<size {
                if r == rank { result.append(message); continue }
                let count = all[r].count
                result.append(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: all[r].address, count: count)))
            }
            try state.close(rank: rank)
            traffic.record(.ringAllGather(messageBytes: all.map(\.count), rank: rank, seconds: seconds(since: start)))
            return result
        }
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard (0..<size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = DispatchTime.now().uptimeNanoseconds
        let all = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(
            operation: "broadcast", count: buffer.count, root: root, address: UnsafeMutableRawPointer(buffer.baseAddress)))
        if rank != root && buffer.count > 0 {
            buffer.baseAddress!.update(from: all[root].address!.assumingMemoryBound(to: Float.self), count: buffer.count)
        }
        try state.close(rank: rank)
        traffic.record(.binomialBroadcast(bytes: 4 * buffer.count, rank: rank, root: root, workers: size,
                                          seconds: seconds(since: start)))
    }

    func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] {
        guard (0..<size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = DispatchTime.now().uptimeNanoseconds
        return try message.withUnsafeBytes { own -> [UInt8] in
            // Only the root's message matters; the other ranks' lengths are not compared.
            let all = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(
                operation: "broadcastBytes", count: message.count, root: root,
                address: UnsafeMutableRawPointer(mutating: own.baseAddress)))
            let result: [UInt8]
            if rank == root { result = message } else {
                let count = all[root].count
                result = count == 0 ? [] : Array(UnsafeRawBufferPointer(start: all[root].address, count: count))
            }
            try state.close(rank: rank)
            traffic.record(.binomialBroadcast(bytes: result.count, rank: rank, root: root, workers: size,
                                              seconds: seconds(since: start)))
            return result
        }
    }

    func barrier() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try state.rendezvous(rank: rank, sequence: nextSequence(), step: traffic.stepNumber, CallDescriptor(operation: "barrier", count: 0, root: -1, address: nil))
        try state.close(rank: rank)  // a second barrier: nobody republishes before everyone has read the descriptors
        traffic.record(.barrier(workers: size, seconds: seconds(since: start)))
    }

    private func nextSequence() -> Int {
        sequence += 1
        return sequence
    }

    // MARK: - Accounting

    private func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
}
