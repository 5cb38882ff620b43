/// The privacy spent so far by a run: the SGM steps it took, grouped by (q, σ), composed by adding
/// their RDP curves. It is what a checkpoint stores, so a resumed run continues the same ε.
public struct PrivacyAccount: Sendable, Equatable, Codable {
    /// One stretch of steps at one sampling rate and noise multiplier.
    public struct Entry: Sendable, Equatable, Codable {
        public var sampleRate: Double
        public var noise: Double
        public var steps: Int
        public init(sampleRate: Double, noise: Double, steps: Int) {
            self.sampleRate = sampleRate
            self.noise = noise
            self.steps = steps
        }
    }

    public private(set) var entries: [Entry] = []
    public let delta: Double
    public let orders: [Double]

    public init(delta: Double, orders: [Double] = RDPAccountant.defaultOrders, entries: [Entry] = []) {
        self.delta = delta
        self.orders = orders
        self.entries = entries
    }

    /// Records `steps` more SGM steps at (q, σ), merged into the last entry when it has the same pair.
    public mutating func record(sampleRate: Double, noise: Double, steps: Int = 1) {
        if let last = entries.last, last.sampleRate == sampleRate, last.noise == noise {
            entries[entries.count - 1].steps += steps
        } else {
            entries.append(Entry(sampleRate: sampleRate, noise: noise, steps: steps))
        }
    }

    public var steps: Int { entries.reduce(0) { $0 + $1.steps } }

    /// ε spent so far at `delta` (0 before any step).
    public var epsilon: Double {
        guard !entries.isEmpty else { return 0 }
        var total = [Double](repeating: 0, count: orders.count)
        for e in entries {
            let curve = RDPAccountant.rdp(sampleRate: e.sampleRate, noise: e.noise, steps: e.steps, orders: orders)
            for k in total.indices { total[k] += curve[k] }
        }
        return RDPAccountant.epsilon(rdp: total, orders: orders, delta: delta).epsilon
    }
}
