import Foundation

/// A line chart drawn as one self-contained `<svg>` element: axes with ticks and labels, a
/// legend, one polyline (and optional point markers) per series. No scripts, no external files.
public struct LineChart: Sendable {
    /// How an axis maps values to positions.
    public enum Scale: Sendable, Equatable {
        case linear
        /// Ticks at the powers of `base`; values ≤ 0 cannot be placed and are left out.
        case logarithmic(base: Double)
    }

    /// How tick values are written.
    public enum TickFormat: Sendable {
        case number, bytes, seconds, percent
        func callAsFunction(_ value: Double) -> String {
            switch self {
            case .number: return String(format: "%g", value)
            case .bytes: return TextFormatting.bytes(value)
            case .seconds: return TextFormatting.seconds(value)
            case .percent: return String(format: "%.0f%%", value * 100)
            }
        }
    }

    public struct Axis: Sendable {
        public var label: String
        public var scale: Scale
        public var format: TickFormat
        /// A linear axis that starts at 0 when every value is positive (times, steps).
        public var fromZero: Bool
        public init(_ label: String, scale: Scale = .linear, format: TickFormat = .number, fromZero: Bool = false) {
            self.label = label
            self.scale = scale
            self.format = format
            self.fromZero = fromZero
        }
    }

    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var markers: Bool
        /// A dashed line (used for reference lines such as ideal scaling).
        public var dashed: Bool
        public init(name: String, points: [(x: Double, y: Double)], markers: Bool = false, dashed: Bool = false) {
            self.name = name
            self.points = points
            self.markers = markers
            self.dashed = dashed
        }
    }

    public var title: String
    public var x: Axis
    public var y: Axis
    public var series: [Series]
    public var width = 720.0
    public var height = 420.0

    public init(title: String, x: Axis, y: Axis, series: [Series]) {
        self.title = title
        self.x = x
        self.y = y
        self.series = series
    }

    /// Distinguishable colours (Okabe–Ito, safe for colour-blind readers), then repeated with dashes.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    /// The chart as an `<svg>` element.
    public func svg() -> String {
        let esc = TextFormatting.html
        let legendRowHeight = 18.0
        let legendHeight = Double(series.count) * legendRowHeight + 8
        let left = 78.0, right = 24.0, top = 36.0, bottom = 56.0 + legendHeight
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let placeable = series.map { s in
            s.points.filter { $0.x.isFinite && $0.y.isFinite && fits($0.x, x.scale) && fits($0.y, y.scale) }
        }
        let allX = placeable.flatMap { $0.map(\.x) }, allY = placeable.flatMap { $0.map(\.y) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(esc(title))\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        out += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(esc(title))</text>\n"
        guard !allX.isEmpty else {
            out += "<text x=\"\(f(width / 2))\" y=\"\(f(height / 2))\" text-anchor=\"middle\" fill=\"#666666\">no data to plot</text>\n"
            return out + "</svg>\n"
        }
        let xRange = AxisRange(values: x.fromZero ? allX + [0] : allX, scale: x.scale)
        let yRange = AxisRange(values: y.fromZero ? allY + [0] : allY, scale: y.scale)
        let px = { (v: Double) in left + xRange.fraction(v) * plotWidth }
        let py = { (v: Double) in top + (1 - yRange.fraction(v)) * plotHeight }

        // Grid, ticks and tick labels.
        out += "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n"
        for tick in xRange.ticks { out += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight))\"/>\n" }
        for tick in yRange.ticks { out += "<line x1=\"\(f(left))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(tick)))\"/>\n" }
        out += "</g>\n<g fill=\"#333333\">\n"
        for tick in xRange.ticks {
            out += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#333333\"/>\n"
            out += "<text x=\"\(f(px(tick)))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(esc(x.format(tick)))</text>\n"
        }
        for tick in yRange.ticks {
            out += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left))\" y2=\"\(f(py(tick)))\" stroke=\"#333333\"/>\n"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(esc(y.format(tick)))</text>\n"
        }
        out += "</g>\n"
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333333\"/>\n"
        out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(top + plotHeight + 38))\" text-anchor=\"middle\">\(esc(x.label))</text>\n"
        out += "<text transform=\"translate(16 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(y.label))</text>\n"

        // Series, then the legend under the plot.
        for (index, points) in placeable.enumerated() {
            let style = lineStyle(index)
            let coordinates = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            out += "<g><title>\(esc(series[index].name))</title>\n"
            out += "<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"\(style.color)\" stroke-width=\"2\"\(style.dash)/>\n"
            if series[index].markers {
                for point in points { out += "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"3\" fill=\"\(style.color)\"/>\n" }
            }
            out += "</g>\n"
        }
        out += "<g class=\"legend\">\n"
        for (index, s) in series.enumerated() {
            let style = lineStyle(index)
            let rowY = top + plotHeight + 52 + Double(index) * legendRowHeight
            out += "<line x1=\"\(f(left))\" y1=\"\(f(rowY))\" x2=\"\(f(left + 28))\" y2=\"\(f(rowY))\" stroke=\"\(style.color)\" stroke-width=\"2\"\(style.dash)/>\n"
            let note = placeable[index].count < s.points.count ? " (\(s.points.count - placeable[index].count) points not placeable)" : ""
            out += "<text x=\"\(f(left + 36))\" y=\"\(f(rowY + 4))\">\(esc(s.name + note))</text>\n"
        }
        out += "</g>\n"
        return out + "</svg>\n"
    }

    private func lineStyle(_ index: Int) -> (color: String, dash: String) {
        let color = Self.palette[index % Self.palette.count]
        let dashed = series[index].dashed || index >= Self.palette.count
        return (color, dashed ? " stroke-dasharray=\"6 4\"" : "")
    }

    private func fits(_ value: Double, _ scale: Scale) -> Bool {
        if case .logarithmic = scale { return value > 0 }
        return true
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// The domain of an axis, extended to round tick values, and the ticks.
struct AxisRange {
    var low: Double
    var high: Double
    var ticks: [Double]
    var scale: LineChart.Scale

    init(values: [Double], scale: LineChart.Scale) {
        self.scale = scale
        var minimum = values.min() ?? 0, maximum = values.max() ?? 1
        switch scale {
        case .linear:
            if minimum == maximum {
                let pad = minimum == 0 ? 1 : abs(minimum) * 0.1
                minimum -= pad
                maximum += pad
            }
            // A "nice" step from {1, 2, 5} × 10^k giving about 5 intervals (Heckbert, Graphics Gems, 1990).
            let raw = (maximum - minimum) / 5
            let power = pow(10, floor(log10(raw)))
            let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
            low = floor(minimum / step) * step
            high = ceil(maximum / step) * step
            let count = Int(((high - low) / step).rounded())
            let start = low
            ticks = (0...count).map { start + Double($0) * step }
        case .logarithmic(let base):
            let lowExponent = floor(log(minimum) / log(base) + 1e-9)
            var highExponent = ceil(log(maximum) / log(base) - 1e-9)
            if highExponent == lowExponent { highExponent += 1 }
            low = pow(base, lowExponent)
            high = pow(base, highExponent)
            let span = Int(highExponent - lowExponent)
            let stride = max(1, (span + 7) / 8)  // at most ~8 labelled ticks
            ticks = Swift.stride(from: 0, through: span, by: stride).map { pow(base, lowExponent + Double($0)) }
        }
    }

    /// Position of `value` in the axis, 0 at `low`, 1 at `high`.
    func fraction(_ value: Double) -> Double {
        switch scale {
        case .linear: return (value - low) / (high - low)
        case .logarithmic: return (log(value) - log(low)) / (log(high) - log(low))
        }
    }
}
