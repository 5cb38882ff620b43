import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The α–β cost model of a cluster network: every message costs a latency α plus its size over
/// the per-link bandwidth β. It projects what a collective would cost on W machines, which is how
/// a user asks "would compression pay off on 16 machines on 10 Gbit/s?" without having them.
///
/// Projected time of one collective where each rank contributes P bytes (Thakur, Rabenseifner
/// and Gropp, "Optimization of Collective Communication Operations in MPICH", 2005):
///
/// | collective | algorithm | time |
/// |---|---|---|
/// | all-reduce | ring: reduce-scatter + all-gather | 2(W−1)·α + 2·(W−1)/W · P/β |
/// | all-gather | ring | (W−1)·α + (W−1)·P/β |
/// | broadcast | binomial tree | ⌈log₂W⌉·(α + P/β) |
/// | barrier | dissemination | ⌈log₂W⌉·α |
///
/// One worker (W = 1) costs nothing. Computation and communication are assumed not to overlap,
/// and every link to be the bottleneck-free full-duplex β (a switched network; no contention).
public struct NetworkModel: Sendable, Equatable, CustomStringConvertible {
    /// Seconds per message (α).
    public var latency: Double
    /// Bytes per second per link (β).
    public var bandwidth: Double

    public init(latency: Double, bandwidth: Double) {
        self.latency = latency
        self.bandwidth = bandwidth
    }

    /// The presets, with the one-way latency we assume for each (TCP over Ethernet at the lower
    /// speeds, RDMA-class fabrics at the higher ones).
    public static let presets: [(name: String, model: NetworkModel)] = [
        ("1gbit", NetworkModel(latency: 50e-6, bandwidth: 1e9 / 8)),
        ("10gbit", NetworkModel(latency: 10e-6, bandwidth: 10e9 / 8)),
        ("25gbit", NetworkModel(latency: 5e-6, bandwidth: 25e9 / 8)),
        ("100gbit", NetworkModel(latency: 2e-6, bandwidth: 100e9 / 8)),
    ]

    /// Parses a network file (a path ending in `.json`, as `bench network --output` writes it:
    /// `NetworkFile`), `10gbit` (a preset), or `<bandwidth>[,<latency>]` with bandwidth in
    /// `bit`/`kbit`/`mbit`/`gbit` per second (e.g. `100mbit`, `2.5gbit`) and latency in
    /// `ns`/`us`/`ms`/`s` (e.g. `50us`); a bandwidth without latency that is not a preset gets 10 µs.
    public init(parsing text: String) throws {
        let spec = text.lowercased().filter { !$0.isWhitespace }
        if spec.hasSuffix(".json") {
            self = try NetworkFile.read(path: text).model
            return
        }
        if let preset = NetworkModel.presets.first(where: { $0.name == spec }) {
            self = preset.model
            return
        }
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let bits = NetworkModel.quantity(parts[0], units: [
            ("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1),
        ]), bits > 0 else {
            throw NetworkModelError(text: text, reason: "expected a preset (\(NetworkModel.presets.map(\.name).joined(separator: ", "))) "
                                    + "or a bandwidth such as 100mbit or 2.5gbit, optionally followed by ',50us'")
        }
        var latency = 10e-6
        if parts.count == 2 {
            guard let value = NetworkModel.quantity(parts[1], units: [("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1)]),
                  value >= 0 else {
                throw NetworkModelError(text: text, reason: "the latency '\(parts[1])' is not a time such as 50us, 0.2ms or 500ns")
            }
            latency = value
        }
        self.init(latency: latency, bandwidth: bits / 8)
    }

    private static func quantity(_ text: Substring, units: [(String, Double)]) -> Double? {
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)), value.isFinite else { return nil }
            return value * scale
        }
        return nil
    }

    public var description: String {
        let gbit = bandwidth * 8 / 1e9
        return "\(gbit >= 1 ? "\(trim(gbit)) Gbit/s" : "\(trim(gbit * 1000)) Mbit/s"), \(trim(latency * 1e6)) µs latency"
    }

    private func trim(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(format: "%.3g", x)
    }

    /// Projected seconds of one collective of `kind` over `workers` ranks, each contributing `payloadBytes`.
    public func time(of kind: CollectiveKind, payloadBytes: Int, workers: Int) -> Double {
        let terms = NetworkModel.terms(of: kind, payloadBytes: payloadBytes, workers: workers)
        return terms.messages * latency + terms.bytes / bandwidth
    }

    /// The formula of the table above as time = messages · α + bytes / β: the sequential message
    /// count and the bytes on the critical path (what `fit` regresses on).
    public static func terms(of kind: CollectiveKind, payloadBytes: Int, workers: Int) -> (messages: Double, bytes: Double) {
        guard workers > 1 else { return (0, 0) }
        let w = Double(workers), p = Double(payloadBytes)
        let rounds = ceil(log2(w))
        switch kind {
        case .allReduce: return (2 * (w - 1), 2 * (w - 1) / w * p)
        case .allGather: return (w - 1, (w - 1) * p)
        case .broadcast: return (rounds, rounds * p)
        case .barrier: return (rounds, 0)
        }
    }

    /// Projected seconds of a sequence of collectives re-run on `workers` ranks: each record keeps
    /// its per-rank payload (which for every method here does not depend on the worker count; the
    /// all-gather's received volume, which does, is in the formula). For a broadcast the record's
    /// payload is the root's (0 on other ranks), so the largest broadcast payload is used.
    public func time(of records: [TrafficRecord], workers: Int) -> Double {
        records.reduce(0) { total, record in
            let payload = record.kind == .broadcast ? max(record.payloadBytes, record.bytesReceived) : record.payloadBytes
            return total + time(of: record.kind, payloadBytes: payload, workers: workers)
        }
    }
}

/// A network description that could not be parsed.
public struct NetworkModelError: Error, Equatable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "network '\(text)': \(reason)" }
}
