/// Local SGD's two settings (`--sync-every`, `--outer-optimizer`; `LocalSGDWorkload`).
public struct LocalSGDSettings: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Inner steps per round (H ≥ 2; H = 1 is per-step data parallelism, run without this).
    public var syncEvery: Int
    public var outer: OuterOptimizer

    public init(syncEvery: Int, outer: OuterOptimizer = .diloco) {
        self.syncEvery = syncEvery
        self.outer = outer
    }

    /// What a checkpoint records: `sync-every=16,outer=nesterov:lr=0.7,momentum=0.9`.
    public var description: String { "sync-every=\(syncEvery),outer=\(outer)" }
}
