import CZlib
import Foundation
import Training

/// The attacks on one reducer, summarized: mean and sample standard deviation over images.
public struct AttackSummary: Sendable, Codable {
    public var reducer: String
    public var method: String
    public var batchSize: Int
    public var noiseMultiplier: Double
    public var images: Int
    public var psnrMean: Double, psnrStandardDeviation: Double
    public var ssimMean: Double, ssimStandardDeviation: Double
    public var labelAccuracy: Double
    /// Seconds per attacked batch (one reconstruction of B images).
    public var secondsPerBatch: Double
    public var batches: [AttackedBatch]

    public init(reducer: String, method: AttackMethod, batchSize: Int, noiseMultiplier: Double, batches: [AttackedBatch]) {
        self.reducer = reducer
        self.method = method.rawValue
        self.batchSize = batchSize
        self.noiseMultiplier = noiseMultiplier
        self.batches = batches
        // An exact reconstruction has PSNR +∞; the statistics cap it at 100 dB (float rounding's level).
        let psnr = batches.flatMap(\.psnr).map { min($0, 100) }, ssim = batches.flatMap(\.ssim)
        images = psnr.count
        (psnrMean, psnrStandardDeviation) = Self.meanAndDeviation(psnr)
        (ssimMean, ssimStandardDeviation) = Self.meanAndDeviation(ssim)
        labelAccuracy = batches.map(\.labelAccuracy).reduce(0, +) / Double(max(1, batches.count))
        secondsPerBatch = batches.map(\.seconds).reduce(0, +) / Double(max(1, batches.count))
    }

    static func meanAndDeviation(_ values: [Double]) -> (Double, Double) {
        guard !values.isEmpty else { return (.nan, .nan) }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return (mean, 0) }
        return (mean, (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot())
    }
}

/// The sweep's HTML report: the table, then per reducer the originals above their reconstructions,
/// on the page head and stylesheet of the project's other reports (`HTMLReport.pageStart`).
public enum InversionReport {
    public static func html(title: String, settings: String, summaries: [AttackSummary],
                            channels: Int, height: Int, width: Int) -> String {
        let escape = TextFormatting.html
        func f(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
        var rows = ""
        for s in summaries {
            rows += "<tr><td>\(escape(s.reducer))</td><td>\(s.images)</td><td>\(f(s.psnrMean, 2)) ± \(f(s.psnrStandardDeviation, 2))</td>"
                + "<td>\(f(s.ssimMean, 3)) ± \(f(s.ssimStandardDeviation, 3))</td><td>\(f(s.labelAccuracy, 2))</td><td>\(f(s.secondsPerBatch, 2))</td></tr>\n"
        }
        var grids = ""
        for s in summaries {
            let originals = s.batches.flatMap(\.originals), reconstructions = s.batches.flatMap(\.reconstructions)
            // Enlarged without smoothing, so single pixels stay visible.
            func strip(_ images: [[Float]]) -> String {
                images.map { "<img alt=\"\" style=\"width:56px;height:56px;image-rendering:pixelated;margin:1px\" "
                    + "src=\"data:image/png;base64,\(png($0, channels: channels, height: height, width: width).base64EncodedString())\">" }
                    .joined()
            }
            grids += "<h2>\(escape(s.reducer))</h2>\n<div>\(strip(originals))</div>\n<div>\(strip(reconstructions))</div>\n"
        }
        return HTMLReport.pageStart(title: title) + """
        <p>\(escape(settings))</p>
        <p class="notes">PSNR in dB on pixels in [0, 1] (capped at 100 dB for exact reconstructions); SSIM with an 11×11 Gaussian window
        (σ = 1.5) as Wang et al. 2004; mean ± sample standard deviation over images. Per reducer: originals (upper row),
        reconstructions (lower row).</p>
        <table><tr><th>reducer</th><th>images</th><th>PSNR (dB)</th><th>SSIM</th><th>label accuracy</th><th>s per batch</th></tr>
        \(rows)</table>
        \(grids)</body></html>
        """
    }

    /// An 8-bit PNG (grey for one channel, RGB for three) of a `[C, H, W]` image in [0, 1].
    public static func png(_ image: [Float], channels: Int, height: Int, width: Int) -> Data {
        precondition(channels == 1 || channels == 3, "grey or RGB")
        precondition(image.count == channels * height * width, "image of the given shape")
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + width * channels))
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width {
                for c in 0..<channels {
                    raw.append(UInt8((min(max(image[(c * height + y) * width + x], 0), 1) * 255).rounded()))
                }
            }
        }
        var compressed = [UInt8](repeating: 0, count: Int(compressBound(uLong(raw.count))))
        var length = uLong(compressed.count)
        let status = compress2(&compressed, &length, raw, uLong(raw.count), 9)
        precondition(status == Z_OK, "zlib compress2 failed with \(status)")
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func chunk(_ type: String, _ body: [UInt8]) {
            var length = UInt32(body.count).bigEndian
            out.append(Data(bytes: &length, count: 4))
            let typed = Array(type.utf8) + body
            out.append(contentsOf: typed)
            var crc = UInt32(crc32(0, typed, uInt(typed.count))).bigEndian
            out.append(Data(bytes: &crc, count: 4))
        }
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        chunk("IHDR", be(width) + be(height) + [8, channels == 1 ? 0 : 2, 0, 0, 0])
        chunk("IDAT", Array(compressed.prefix(Int(length))))
        chunk("IEND", [])
        return out
    }
}
