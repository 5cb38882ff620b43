import Dispatch

/// One rank's handle on an in-process group (see `InProcessGroup`).
final class InProcessCommunicator: Communicator {
    let rank: Int
    var size: Int { state.size }
    let traffic = TrafficLedger()
    private let state: GroupState

    init(rank: Int, state: GroupState) {
        self.rank = rank
        self.state = state
    }

    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = buffer.count
        let all = try state.rendezvous(rank: rank, CallDescriptor(
            operation: "allReduce.\(operation.rawValue)", count: n, root: -1, address: UnsafeMutableRawPointer(buffer.baseAddress)))
        let w = size
        if w > 1 && n > 0 {
            let sources = all.map { $0.address!.assumingMemoryBound(to: Float.self) }
            // Reduce-scatter: this rank owns chunk `rank` and sums it over ranks in order 0..<w.
            let lo = n * rank / w, hi = n * (rank + 1) / w
            if lo < hi {
                let out = buffer.baseAddress!
                switch operation {
                case .sum, .mean:
                    let scale: Float = operation == .mean ? 1 / Float(w) : 1
                    for i in lo..<hi {
                        var s = sources[0][i]
                        for r in 1..<w { s += sources[r][i] }
                        out[i] = operation == .mean ? s * scale : s
                    }
                case .max:
                    for i in lo..<hi {
                        var m = sources[0][i]
                        for r in 1..<w { m = Swift.max(m, sources[r][i]) }
                        out[i] = m
                    }
                }
            }
            try state.barrier()
            // All-gather: copy every other chunk from its owner.
            for owner in 0..<w where owner != rank {
                let a = n * owner / w, b = n * (owner + 1) / w
                if a < b { (buffer.baseAddress! + a).update(from: sources[owner] + a, count: b - a) }
            }
        }
        try state.barrier()  // sources stay valid until every rank has copied
        let bytes = 4 * n
        let moved = TrafficLedger.ringAllReduceBytes(payloadBytes: bytes, workers: w)
        record(.allReduce, payload: bytes, sent: moved, received: moved, since: start)
    }

    func allGather(_ message: [UInt8]) throws -> [[UInt8]] {
        let start = DispatchTime.now().uptimeNanoseconds
        return try message.withUnsafeBytes { own -> [[UInt8]] in
            let all = try state.rendezvous(rank: rank, CallDescriptor(
                operation: "allGather", count: message.count, root: -1,
                address: UnsafeMutableRawPointer(mutating: own.baseAddress)))
            var result: [[UInt8]] = []
            result.reserveCapacity(size)
            for r in 0..<size {
                if r == rank { result.append(message); continue }
                let count = all[r].count
                result.append(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: all[r].address, count: count)))
            }
            try state.barrier()
            let received = all.enumerated().reduce(0) { $0 + ($1.offset == rank ? 0 : $1.element.count) }
            record(.allGather, payload: message.count, sent: (size - 1) * message.count, received: received, since: start)
            return result
        }
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard (0..<size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = DispatchTime.now().uptimeNanoseconds
        let all = try state.rendezvous(rank: rank, CallDescriptor(
            operation: "broadcast", count: buffer.count, root: root, address: UnsafeMutableRawPointer(buffer.baseAddress)))
        if rank != root && buffer.count > 0 {
            buffer.baseAddress!.update(from: all[root].address!.assumingMemoryBound(to: Float.self), count: buffer.count)
        }
        try state.barrier()
        recordBroadcast(bytes: 4 * buffer.count, root: root, since: start)
    }

    func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] {
        guard (0..<size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = DispatchTime.now().uptimeNanoseconds
        return try message.withUnsafeBytes { own -> [UInt8] in
            // Only the root's message matters; the other ranks' lengths are not compared.
            let all = try state.rendezvous(rank: rank, CallDescriptor(
                operation: "broadcastBytes", count: message.count, root: root,
                address: UnsafeMutableRawPointer(mutating: own.baseAddress)))
            let result: [UInt8]
            if rank == root { result = message } else {
                let count = all[root].count
                result = count == 0 ? [] : Array(UnsafeRawBufferPointer(start: all[root].address, count: count))
            }
            try state.barrier()
            recordBroadcast(bytes: result.count, root: root, since: start)
            return result
        }
    }

    func barrier() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try state.rendezvous(rank: rank, CallDescriptor(operation: "barrier", count: 0, root: -1, address: nil))
        try state.barrier()  // a second barrier: nobody republishes before everyone has read the descriptors
        record(.barrier, payload: 0, sent: 0, received: 0, since: start)
    }

    // MARK: - Accounting

    private func record(_ kind: CollectiveKind, payload: Int, sent: Int, received: Int, since start: UInt64) {
        traffic.record(TrafficRecord(kind: kind, payloadBytes: payload, bytesSent: sent, bytesReceived: received,
                                     seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, workers: size))
    }

    /// Binomial-tree broadcast: the root sends to ⌈log₂ W⌉ children; rank r (relative to the root)
    /// receives once and sends to the ranks r + 2^k for 2^k > r, r + 2^k < W.
    private func recordBroadcast(bytes: Int, root: Int, since start: UInt64) {
        let relative = (rank - root + size) % size
        var children = 0
        var step = 1
        while step < size {
            if relative < step && relative + step < size { children += 1 }
            step <<= 1
        }
        record(.broadcast, payload: rank == root ? bytes : 0, sent: children * bytes,
               received: rank == root ? 0 : bytes, since: start)
    }
}
