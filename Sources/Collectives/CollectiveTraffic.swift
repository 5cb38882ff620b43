/// The byte formulas of each collective algorithm as `TrafficRecord`s of one rank, shared by
/// every backend so that counters do not depend on the transport (see `TrafficRecord` and
/// docs/collectives.md).
extension TrafficRecord {
    /// Ring all-reduce of `count` elements of `elementBytes` bytes (4 for fp32, 2 for fp16/bf16)
    /// over `workers`: sent = received = 2(W−1)/W · P, summed exactly over the chunks
    /// (`TrafficLedger.ringAllReduceBytes`).
    public static func ringAllReduce(count: Int, workers: Int, seconds: Double, elementBytes: Int = 4) -> TrafficRecord {
        let payload = count * elementBytes
        let moved = TrafficLedger.ringAllReduceBytes(payloadBytes: payload, workers: workers)
        return TrafficRecord(kind: .allReduce, payloadBytes: payload, bytesSent: moved,
                             bytesReceived: moved, seconds: seconds, workers: workers)
    }

    /// Ring all-gather of messages of `messageBytes[r]` bytes: this rank's message travels to the
    /// W−1 others (sent = (W−1) · own) and every other rank's message arrives once.
    public static func ringAllGather(messageBytes: [Int], rank: Int, seconds: Double) -> TrafficRecord {
        let own = messageBytes[rank]
        let others = messageBytes.reduce(0, +) - own
        return TrafficRecord(kind: .allGather, payloadBytes: own, bytesSent: (messageBytes.count - 1) * own,
                             bytesReceived: others, seconds: seconds, workers: messageBytes.count)
    }

    /// Binomial-tree broadcast of `bytes` from `root`: the payload is the root's (0 on the other
    /// ranks, which contribute nothing); this rank receives the bytes once unless it is the root,
    /// and sends them to each of its children (`binomialTreeChildren`).
    public static func binomialBroadcast(bytes: Int, rank: Int, root: Int, workers: Int,
                                         seconds: Double) -> TrafficRecord {
        let relative = (rank - root + workers) % workers
        let children = binomialTreeChildren(relativeRank: relative, workers: workers)
        return TrafficRecord(kind: .broadcast, payloadBytes: relative == 0 ? bytes : 0,
                             bytesSent: children * bytes, bytesReceived: relative == 0 ? 0 : bytes,
                             seconds: seconds, workers: workers)
    }

    /// A barrier moves no payload; its cost is latency only (see `NetworkModel`).
    public static func barrier(workers: Int, seconds: Double) -> TrafficRecord {
        TrafficRecord(kind: .barrier, payloadBytes: 0, bytesSent: 0, bytesReceived: 0,
                      seconds: seconds, workers: workers)
    }

    /// Children of a node of the binomial broadcast tree, ranks counted from the root:
    /// node v receives from v − 2^⌊log₂ v⌋ and sends to v + 2^k for every 2^k > v with
    /// v + 2^k < W. The root has ⌈log₂ W⌉ children; the whole tree sends W − 1 copies.
    public static func binomialTreeChildren(relativeRank: Int, workers: Int) -> Int {
        var children = 0
        var step = 1
        while step < workers {
            if relativeRank < step && relativeRank + step < workers { children += 1 }
            step <<= 1
        }
        return children
    }
}
