import Foundation

/// What `powersgd cluster` reports after its job: per host, the bytes its link carried as the
/// kernel counted them against the bytes the job's traffic ledger accounted for on that host's rank.
public struct ClusterReport: Sendable, Codable, Equatable {
    public struct Host: Sendable, Codable, Equatable {
        public var host: Int
        public var namespace: String
        public var address: String
        /// Kernel counters of the host's `eth0` over the job (difference of before and after).
        public var kernelBytesSent: Int
        public var kernelBytesReceived: Int
        public var kernelPacketsSent: Int
        public var kernelPacketsReceived: Int
        /// The rank's ledger (nil when the rank wrote none: it failed before the end).
        public var ledgerBytesSent: Int?
        public var ledgerBytesReceived: Int?
        /// kernel / ledger.
        public var sentRatio: Double?
        public var receivedRatio: Double?
        /// Kernel bytes over the job's wall time, in bits per second (start-up and evaluation included).
        public var achievedSendBitsPerSecond: Double
        public var achievedReceiveBitsPerSecond: Double
        /// Wall seconds the rank spent inside collectives (its ledger), and the kernel bytes over
        /// that time: the rate the link achieved while the job was communicating.
        public var collectiveSeconds: Double?
        public var collectiveSendBitsPerSecond: Double?
        public var collectiveReceiveBitsPerSecond: Double?
    }

    public var hosts: Int
    public var linkBitsPerSecond: Double
    public var delaySeconds: Double?
    /// The `--network` the job's projections used.
    public var projectedNetwork: String
    public var command: [String]
    public var exitStatus: Int32
    public var wallSeconds: Double
    public var perHost: [Host]

    /// The report's text for the terminal.
    public var text: String {
        var lines = ["powersgd cluster: \(hosts) hosts, \(LinkRate(bitsPerSecond: linkBitsPerSecond)) links, job exit status "
                     + "\(exitStatus) after \(String(format: "%.1f", wallSeconds)) s; projections on --network \(projectedNetwork)"]
        lines.append("host  kernel sent  ledger sent  ratio   kernel recv  ledger recv  ratio   up / down over the job; over its collectives")
        for h in perHost {
            func bytes(_ b: Int?) -> String { b.map { String(format: "%11d", $0) } ?? String(repeating: " ", count: 10) + "-" }
            func ratio(_ r: Double?) -> String { r.map { String(format: "%6.3f", $0) } ?? "     -" }
            lines.append(String(format: "%4d  ", h.host) + bytes(h.kernelBytesSent) + "  " + bytes(h.ledgerBytesSent) + "  "
                         + ratio(h.sentRatio) + "  " + bytes(h.kernelBytesReceived) + "  " + bytes(h.ledgerBytesReceived) + "  "
                         + ratio(h.receivedRatio) + String(format: "   %.2f / %.2f Mbit/s", h.achievedSendBitsPerSecond / 1e6,
                                                             h.achievedReceiveBitsPerSecond / 1e6)
                         + (h.collectiveSendBitsPerSecond.map { up in
                             String(format: "; %.2f / %.2f Mbit/s in %.2f s", up / 1e6, (h.collectiveReceiveBitsPerSecond ?? 0) / 1e6,
                                    h.collectiveSeconds ?? 0) } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
