import Foundation

/// The rate of an emulated link, in bits per second on the wire (Ethernet frames, as `tc` counts).
public struct LinkRate: Sendable, Equatable, CustomStringConvertible {
    public var bitsPerSecond: Double

    /// The fastest rate we shape: above it the token bucket's timer granularity, not the rate,
    /// limits a veth, and two cores cannot fill it anyway.
    public static let maximumBitsPerSecond = 10e9
    /// The slowest: below it a training step's few kilobytes of bookkeeping take seconds.
    public static let minimumBitsPerSecond = 100e3

    public init(bitsPerSecond: Double) { self.bitsPerSecond = bitsPerSecond }

    /// Parses `20mbit`, `100mbit`, `1gbit`, `2.5gbit`, `500kbit` (bits per second, as `tc` spells them).
    public init(parsing text: String) throws {
        let spec = text.lowercased().filter { !$0.isWhitespace }
        let units: [(String, Double)] = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)]
        guard let (suffix, scale) = units.first(where: { spec.hasSuffix($0.0) }),
              let value = Double(spec.dropLast(suffix.count)), value.isFinite else {
            throw ClusterError.invalid("--link '\(text)': expected a rate such as 20mbit, 100mbit or 1gbit")
        }
        let bits = value * scale
        guard bits >= LinkRate.minimumBitsPerSecond, bits <= LinkRate.maximumBitsPerSecond else {
            throw ClusterError.invalid("--link '\(text)': the rate must be between 100kbit and 10gbit")
        }
        self.bitsPerSecond = bits
    }

    /// The rate in `tc`'s syntax (whole bits per second).
    var tcRate: String { "\(Int(bitsPerSecond.rounded()))bit" }

    /// TCP payload bytes per second the link carries when full: each 1514-byte Ethernet frame
    /// (what `tbf` and the kernel's counters see) holds a 1448-byte segment (MTU 1500 minus 20
    /// bytes of IPv4 header and 32 of TCP header with timestamps). This is the β a model of
    /// the link should use.
    public var payloadBytesPerSecond: Double { bitsPerSecond / 8 * Double(EmulatedCluster.segmentBytes) / Double(EmulatedCluster.frameBytes) }

    public var description: String {
        bitsPerSecond >= 1e9 ? "\(trim(bitsPerSecond / 1e9)) Gbit/s" : bitsPerSecond >= 1e6
            ? "\(trim(bitsPerSecond / 1e6)) Mbit/s" : "\(trim(bitsPerSecond / 1e3)) kbit/s"
    }

    private func trim(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(format: "%.3g", x)
    }
}
