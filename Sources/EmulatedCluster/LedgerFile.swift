import Foundation

/// What one rank's traffic ledger counted over its whole run, written at the end of the job so
/// that `powersgd cluster` can hold it against the kernel's counters of that rank's link.
///
/// A rank writes `<directory>/rank-<r>.json` when the environment variable
/// `POWERSGD_CLUSTER_LEDGER_DIR` names a directory (the cluster command sets it for its job).
public struct LedgerFile: Sendable, Codable, Equatable {
    public static let environmentVariable = "POWERSGD_CLUSTER_LEDGER_DIR"

    public var rank: Int
    public var size: Int
    public var collectives: Int
    public var payloadBytes: Int
    public var bytesSent: Int
    public var bytesReceived: Int
    /// Wall seconds inside collectives.
    public var seconds: Double

    public init(rank: Int, size: Int, collectives: Int, payloadBytes: Int, bytesSent: Int, bytesReceived: Int, seconds: Double) {
        self.rank = rank
        self.size = size
        self.collectives = collectives
        self.payloadBytes = payloadBytes
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.seconds = seconds
    }

    static func url(directory: URL, rank: Int) -> URL { directory.appendingPathComponent("rank-\(rank).json") }

    /// Writes this ledger if the job runs under `powersgd cluster` (the variable is set); else does nothing.
    public func writeIfRequested() throws {
        guard let path = ProcessInfo.processInfo.environment[LedgerFile.environmentVariable], !path.isEmpty else { return }
        let data = try JSONEncoder().encode(self)
        try data.write(to: LedgerFile.url(directory: URL(fileURLWithPath: path), rank: rank), options: .atomic)
    }

    /// The ledgers of ranks 0 ..< ranks in `directory`, nil for a rank that wrote none (it failed).
    static func read(directory: URL, ranks: Int) -> [LedgerFile?] {
        (0 ..< ranks).map { rank in
            guard let data = try? Data(contentsOf: url(directory: directory, rank: rank)) else { return nil }
            return try? JSONDecoder().decode(LedgerFile.self, from: data)
        }
    }
}
