import Foundation
import Testing
@testable import GradientCompression

/// The catalog is the one list of reducers: every entry builds with its declared defaults and
/// with each default written out, the docs show the table generated from it, and every
/// element-wise compressor behind an entry is reachable for the fuzz and input-policy tests.
@Suite struct ReducerCatalogTests {
    /// The repository's docs/compressors.md.
    static let compressorsDoc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/compressors.md")

    @Test func docsShowTheGeneratedOptionsTable() throws {
        let docs = try String(contentsOf: Self.compressorsDoc, encoding: .utf8)
        #expect(docs.contains(ReducerCatalog.optionsTable),
                "docs/compressors.md must contain the table `powersgd reducers --markdown` prints:\n\(ReducerCatalog.optionsTable)")
        for entry in ReducerCatalog.entries {
            #expect(docs.contains("| `\(entry.name)` |"), "\(entry.name) is not in docs/compressors.md")
        }
    }

    /// The repository README's list of reducers names every catalog entry.
    @Test func readmeListsEveryReducer() throws {
        let readme = try String(contentsOf: Self.compressorsDoc.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md"), encoding: .utf8)
        let list = try #require(readme.range(of: "Reducers (`--reducer NAME:key=value,...`):"))
        let rest = readme[list.upperBound...]
        let paragraph = rest[..<(rest.range(of: "\n\n")?.lowerBound ?? rest.endIndex)]
        for entry in ReducerCatalog.entries {
            #expect(paragraph.contains("`\(entry.name)`"), "README.md's reducer list misses \(entry.name)")
        }
    }

    @Test func namesAreUniqueAndEveryEntryBuildsWithItsDefaults() throws {
        #expect(Set(ReducerCatalog.entries.map(\.name)).count == ReducerCatalog.entries.count)
        for entry in ReducerCatalog.entries {
            #expect(Set(entry.options.map(\.key)).count == entry.options.count, "\(entry.name) declares an option twice")
            _ = try ReducerCatalog.make(ReducerSpecification(name: entry.name), seed: 1)
        }
    }

    /// A declared default is the value the builder uses: writing it out gives the same reducer.
    @Test(arguments: ReducerCatalog.entries.map(\.name))
    func writingADeclaredDefaultOutChangesNothing(name: String) throws {
        let entry = try #require(ReducerCatalog.entry(named: name))
        let plain = try ReducerDigestTests.digest(name)
        for option in entry.options where Self.isLiteral(option) {
            let explicit = "\(name):\(option.key)=\(option.defaultValue)"
            #expect(try ReducerDigestTests.digest(explicit) == plain, "\(explicit)")
            #expect(try ReducerCatalog.make(ReducerSpecification(parsing: explicit), seed: 3).name
                    == ReducerCatalog.make(ReducerSpecification(name: name), seed: 3).name, "\(explicit)")
        }
    }

    /// Every declared option is checked against its declared values.
    @Test func valuesOutsideTheDeclaredOnesAreErrorsNamingTheOption() throws {
        for entry in ReducerCatalog.entries {
            for option in entry.options {
                let bad: String
                switch option.kind {
                case .integer(let range): bad = range.upperBound == Int.max ? "\(range.lowerBound - 1)" : "\(range.upperBound + 1)"
                case .number(let range): bad = "\(range.upperBound * 2 + 1)"
                case .flag: bad = "maybe"
                case .choice: bad = "nonsense"
                }
                #expect(throws: GradientCompressionError.self, "\(entry.name):\(option.key)=\(bad)") {
                    _ = try ReducerCatalog.make(ReducerSpecification(name: entry.name, options: [(option.key, bad)]), seed: 0)
                }
            }
            #expect(throws: GradientCompressionError.self) {
                _ = try ReducerCatalog.make(ReducerSpecification(name: entry.name, options: [("no-such-option", "1")]), seed: 0)
            }
        }
    }

    static func isLiteral(_ option: ReducerOption) -> Bool {
        switch option.kind {
        case .integer: return Int(option.defaultValue) != nil
        case .number: return Double(option.defaultValue) != nil
        case .flag: return ["true", "false"].contains(option.defaultValue)
        case .choice(let words): return words.contains(option.defaultValue)
        }
    }
}
