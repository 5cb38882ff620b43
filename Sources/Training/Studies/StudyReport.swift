import Foundation

/// A study's report: paragraphs that state the finding and its limits, tables and charts, written
/// as one self-contained HTML file (inline SVG) and as Markdown for the docs.
public struct StudyReport: Sendable {
    public struct Table: Sendable {
        public var caption: String
        public var header: [String]
        public var rows: [[String]]
        public init(caption: String, header: [String], rows: [[String]]) {
            self.caption = caption
            self.header = header
            self.rows = rows
        }

        /// The table as an HTML `<table>` with its caption, every text escaped.
        public func html() -> String {
            let esc = TextFormatting.html
            var out = "<table>\n<caption>\(esc(caption))</caption>\n<thead><tr>"
                + header.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            for row in rows { out += "<tr>" + row.map { "<td>\(esc($0))</td>" }.joined() + "</tr>\n" }
            return out + "</tbody>\n</table>\n"
        }
    }

    public var title: String
    public var paragraphs: [String] = []
    public var tables: [Table] = []
    public var charts: [LineChart] = []

    public init(title: String) { self.title = title }

    public func html() -> String {
        let esc = TextFormatting.html
        var out = HTMLReport.pageStart(title: title)
        for paragraph in paragraphs { out += "<p>\(esc(paragraph))</p>\n" }
        for table in tables { out += table.html() }
        for chart in charts { out += "<figure>\n" + chart.svg() + "</figure>\n" }
        return out + "</body>\n</html>\n"
    }

    public func markdown() -> String {
        var out = "# \(title)\n\n"
        for paragraph in paragraphs { out += paragraph + "\n\n" }
        for table in tables {
            out += "**\(TextFormatting.markdownCell(table.caption))**\n\n"
                + TextFormatting.markdownTable(header: table.header, rows: table.rows) + "\n"
        }
        return out
    }
}
