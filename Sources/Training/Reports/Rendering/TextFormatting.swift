import Foundation

/// Number formats and escaping shared by the tables, the HTML report and the charts.
public enum TextFormatting {
    /// "1 worker", "4 workers".
    public static func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

    /// `1.23 MB`: decimal SI prefixes, 3 significant digits (bytes below 1000 exactly: `512 B`).
    public static func bytes(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var scaled = value, unit = 0
        while abs(scaled) >= 999.5 && unit < units.count - 1 { scaled /= 1000; unit += 1 }
        return unit == 0 ? "\(Int(scaled.rounded())) B" : "\(significant(scaled)) \(units[unit])"
    }

    /// `850 µs`, `12.3 ms`, `1.23 s`, `2.50 min`, `1.20 h`: 3 significant digits.
    public static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        let magnitude = abs(value)
        if magnitude == 0 { return "0 s" }
        if magnitude < 1e-3 { return "\(significant(value * 1e6)) µs" }
        if magnitude < 1 { return "\(significant(value * 1e3)) ms" }
        if magnitude < 120 { return "\(significant(value)) s" }
        if magnitude < 7200 { return "\(significant(value / 60)) min" }
        return "\(significant(value / 3600)) h"
    }

    /// 3 significant digits, without exponent for the magnitudes reports show (`0.0123`, `12.3`, `1230`).
    public static func significant(_ value: Double, digits: Int = 3) -> String {
        guard value.isFinite else { return "—" }
        if value == 0 { return "0" }
        var exponent = Int(floor(log10(abs(value))))
        // Rounding can carry into a new leading digit (0.9999 → 1.00): take the exponent of the rounded value.
        let scale = pow(10, Double(digits - 1 - exponent))
        if abs((value * scale).rounded()) >= pow(10, Double(digits)) { exponent += 1 }
        return String(format: "%.\(max(0, digits - 1 - exponent))f", value)
    }

    /// A metric value: accuracy as a percentage with two decimals, perplexity with two decimals.
    public static func metric(_ value: Double, _ metric: EvaluationPart.Metric) -> String {
        guard value.isFinite else { return "—" }
        return metric == .accuracy ? String(format: "%.2f%%", value * 100) : String(format: "%.2f", value)
    }

    /// A number for CSV: integers without a fraction, others in Swift's shortest round-trip form.
    public static func csvNumber(_ value: Double) -> String {
        if value.isFinite && value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        return "\(value)"
    }

    /// Escapes text for HTML element content and attribute values.
    public static func html(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled.
    public static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A Markdown table cell: pipes escaped, line breaks flattened.
    public static func markdownCell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// A Markdown table from a header and rows of cells (cells escaped here).
    static func markdownTable(header: [String], rows: [[String]]) -> String {
        let line = { (cells: [String]) in "| " + cells.map(markdownCell).joined(separator: " | ") + " |" }
        return ([line(header), "|" + header.map { _ in "---|" }.joined()] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    /// A CSV document from a header and rows of cells (fields quoted here), lines ended by CRLF-free `\n`.
    static func csvTable(header: [String], rows: [[String]]) -> String {
        ([header] + rows).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
