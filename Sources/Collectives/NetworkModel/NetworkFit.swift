import Foundation

/// One measured collective: what `NetworkModel.fit` calibrates the model on.
public struct NetworkSample: Sendable, Codable, Equatable {
    public var kind: CollectiveKind
    /// Bytes each rank contributes (the model's P).
    public var payloadBytes: Int
    public var workers: Int
    /// Measured wall seconds of one such collective.
    public var seconds: Double

    public init(kind: CollectiveKind, payloadBytes: Int, workers: Int, seconds: Double) {
        self.kind = kind
        self.payloadBytes = payloadBytes
        self.workers = workers
        self.seconds = seconds
    }
}

extension NetworkModel {
    /// The α and β of the model's formulas (`terms`: time = m·α + b/β) fitted to measured times
    /// in two steps, as for Hockney's model:
    /// 1. β from the least-squares line through (m, b) → t in absolute time, which the large
    ///    messages decide;
    /// 2. α as the median, over the latency-dominated samples (where b/β is under half the
    ///    time), of (t − b/β) / m — not the line's intercept, which the large messages' noise
    ///    would swamp (±1 % of 64 MB at 20 Mbit/s is 0.27 s, a thousand latencies).
    /// A shaper with a token bucket passes messages smaller than its bucket at line rate, so the
    /// small messages alone would suggest a far higher β; step 1 keeps them from deciding it.
    public static func fit(_ samples: [NetworkSample]) throws -> NetworkModel {
        let rows = samples.compactMap { sample -> (m: Double, b: Double, t: Double)? in
            let terms = NetworkModel.terms(of: sample.kind, payloadBytes: sample.payloadBytes, workers: sample.workers)
            guard sample.seconds > 0, sample.seconds.isFinite, terms.messages > 0 || terms.bytes > 0 else { return nil }
            return (terms.messages, terms.bytes, sample.seconds)
        }
        guard rows.count >= 2 else {
            throw NetworkFitError("need at least two timed collectives over two or more ranks to fit α and β (got \(rows.count))")
        }
        // Normal equations of [m b]·[α γ]ᵀ ≈ t, γ = 1/β.
        var mm = 0.0, mb = 0.0, bb = 0.0, mt = 0.0, bt = 0.0
        for r in rows { mm += r.m * r.m; mb += r.m * r.b; bb += r.b * r.b; mt += r.m * r.t; bt += r.b * r.t }
        let determinant = mm * bb - mb * mb
        var gamma = bb > 0 ? bt / bb : 0
        if determinant > 1e-9 * mm * bb {
            let alpha = (bb * mt - mb * bt) / determinant
            gamma = alpha >= 0 ? (mm * bt - mb * mt) / determinant : bt / bb
        }
        guard gamma > 0, gamma.isFinite else {
            throw NetworkFitError("the measured times do not grow with the message size, so no bandwidth fits them; "
                                  + "measure larger messages")
        }
        let latencies = rows.filter { $0.m > 0 && $0.b * gamma < $0.t / 2 }.map { max(0, ($0.t - $0.b * gamma) / $0.m) }.sorted()
        let alpha = latencies.isEmpty ? 0 : latencies.count % 2 == 1 ? latencies[latencies.count / 2]
            : (latencies[latencies.count / 2 - 1] + latencies[latencies.count / 2]) / 2
        return NetworkModel(latency: alpha, bandwidth: 1 / gamma)
    }
}

/// A network file: the model's parameters, which `--network FILE.json` reads and
/// `bench network --output FILE.json` writes.
///
/// ```json
/// {"format": "powersgd-network-v1", "latency": 0.00012, "bandwidth": 2392000, "source": "..."}
/// ```
/// `latency` is α in seconds per message, `bandwidth` β in bytes per second per link.
public struct NetworkFile: Sendable, Codable, Equatable {
    public static let formatName = "powersgd-network-v1"
    public var format: String
    public var latency: Double
    public var bandwidth: Double
    /// How the parameters were obtained (free text).
    public var source: String?

    public init(model: NetworkModel, source: String?) {
        format = NetworkFile.formatName
        latency = model.latency
        bandwidth = model.bandwidth
        self.source = source
    }

    public var model: NetworkModel { NetworkModel(latency: latency, bandwidth: bandwidth) }

    public static func read(path: String) throws -> NetworkFile {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw NetworkModelError(text: path, reason: "cannot read the network file (\(error.localizedDescription))")
        }
        let file: NetworkFile
        do { file = try JSONDecoder().decode(NetworkFile.self, from: data) } catch {
            throw NetworkModelError(text: path, reason: "not a network file: expected JSON with \"format\": \"\(formatName)\", "
                                    + "\"latency\" (seconds) and \"bandwidth\" (bytes per second) (\(error))")
        }
        guard file.format == formatName else {
            throw NetworkModelError(text: path, reason: "format '\(file.format)' is not \(formatName)")
        }
        guard file.latency >= 0, file.latency.isFinite else {
            throw NetworkModelError(text: path, reason: "\"latency\" must be 0 or more seconds (got \(file.latency))")
        }
        guard file.bandwidth > 0, file.bandwidth.isFinite else {
            throw NetworkModelError(text: path, reason: "\"bandwidth\" must be a positive number of bytes per second (got \(file.bandwidth))")
        }
        return file
    }

    public func write(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// Measurements a network model cannot be fitted to.
public struct NetworkFitError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
