import Foundation

/// A reducer named with its options, as written on the command line or in a config file:
/// `powersgd:rank=2,warm-start=false`, `qsgd:levels=64,bucket=512`, `sgd`.
///
/// A list of them is written with commas too
/// (`sgd,powersgd:rank=1,powersgd:rank=2,qsgd:levels=64,bucket=512`): a comma-separated piece
/// of the form `key=value` with no `:` continues the options of the reducer before it; any other
/// piece starts a new reducer.
///
/// The form a reducer's `name` prints, `powersgd(rank=2,warm-start=false)`, is accepted too, so
/// a name copied from a table or a log builds the same reducer again.
public struct ReducerSpecification: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// Options in the order written; keys are lower-case with `-` (`warm-start`), `_` accepted.
    public var options: [(key: String, value: String)]

    public init(name: String, options: [(key: String, value: String)] = []) {
        self.name = name
        self.options = options
    }

    public static func == (a: ReducerSpecification, b: ReducerSpecification) -> Bool {
        a.name == b.name && a.options.map { "\($0.key)=\($0.value)" } == b.options.map { "\($0.key)=\($0.value)" }
    }

    public var description: String {
        options.isEmpty ? name : name + ":" + options.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Parses one specification, e.g. `powersgd:rank=2`.
    public init(parsing text: String) throws {
        let list = try ReducerSpecification.parseList(text)
        guard list.count == 1 else {
            throw GradientCompressionError.invalidOption("'\(text)' names \(list.count) reducers; expected one")
        }
        self = list[0]
    }

    /// Parses a comma-separated list of specifications.
    public static func parseList(_ text: String) throws -> [ReducerSpecification] {
        var result: [ReducerSpecification] = []
        for rawPiece in try topLevelPieces(text) {
            let piece = rawPiece.trimmingCharacters(in: .whitespaces)
            guard !piece.isEmpty else {
                throw GradientCompressionError.invalidOption("empty entry in reducer list '\(text)'")
            }
            if let open = piece.firstIndex(of: "("), !piece[..<open].contains(":") {
                let name = piece[..<open].trimmingCharacters(in: .whitespaces).lowercased()
                guard !name.isEmpty, piece.last == ")" else {
                    throw GradientCompressionError.invalidOption("'\(piece)' in '\(text)' is not of the form name(key=value,...)")
                }
                var spec = ReducerSpecification(name: name)
                let inside = piece[piece.index(after: open) ..< piece.index(before: piece.endIndex)]
                if !inside.trimmingCharacters(in: .whitespaces).isEmpty {
                    for option in inside.split(separator: ",", omittingEmptySubsequences: false) {
                        spec.options.append(try self.option(option.trimmingCharacters(in: .whitespaces), in: text))
                    }
                }
                result.append(spec)
            } else if let colon = piece.firstIndex(of: ":") {
                let name = String(piece[..<colon]).lowercased()
                guard !name.isEmpty else {
                    throw GradientCompressionError.invalidOption("'\(piece)' has options but no reducer name before ':'")
                }
                var spec = ReducerSpecification(name: name)
                let rest = piece[piece.index(after: colon)...]
                if !rest.isEmpty { spec.options.append(try option(String(rest), in: text)) }
                result.append(spec)
            } else if piece.contains("=") {
                guard !result.isEmpty else {
                    throw GradientCompressionError.invalidOption("option '\(piece)' comes before any reducer name in '\(text)'")
                }
                result[result.count - 1].options.append(try option(piece, in: text))
            } else {
                result.append(ReducerSpecification(name: piece.lowercased()))
            }
        }
        return result
    }

    /// `text` split at the commas outside parentheses.
    private static func topLevelPieces(_ text: String) throws -> [Substring] {
        var pieces: [Substring] = [], depth = 0, start = text.startIndex
        for index in text.indices {
            switch text[index] {
            case "(": depth += 1
            case ")":
                depth -= 1
                guard depth >= 0 else { throw GradientCompressionError.invalidOption("unbalanced ')' in '\(text)'") }
            case "," where depth == 0:
                pieces.append(text[start..<index])
                start = text.index(after: index)
            default: break
            }
        }
        guard depth == 0 else { throw GradientCompressionError.invalidOption("unclosed '(' in '\(text)'") }
        pieces.append(text[start...])
        return pieces
    }

    /// The name a reducer prints for itself: `method(key=value,...)`, or `method` alone without
    /// options. `ReducerSpecification(parsing:)` reads it back.
    public static func reducerName(_ method: String, _ options: [(key: String, value: String)]) -> String {
        options.isEmpty ? method : method + "(" + options.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + ")"
    }

    /// `name` (a reducer's printed name) with option `key` set to `value`, replacing an earlier
    /// value: how a wrapper (error feedback, a global scope) names what it adds to the reducer inside.
    public static func reducerName(_ name: String, setting key: String, to value: String) -> String {
        guard var spec = try? ReducerSpecification(parsing: name) else { return "\(name)[\(key)=\(value)]" }
        spec.options.removeAll { $0.key == key }
        spec.options.append((key, value))
        return reducerName(spec.name, spec.options)
    }

    private static func option(_ piece: String, in text: String) throws -> (key: String, value: String) {
        let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw GradientCompressionError.invalidOption("'\(piece)' in '\(text)' is not of the form key=value")
        }
        let key = parts[0].lowercased().replacingOccurrences(of: "_", with: "-")
        return (key, String(parts[1]))
    }
}

/// One option a reducer accepts: its key, the values it takes, and its default. The catalog's
/// entries declare them; the option reader, `powersgd reducers` and the options table of
/// docs/compressors.md are all read from these declarations.
public struct ReducerOption: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case integer(ClosedRange<Int>)
        case number(ClosedRange<Double>)
        case flag
        /// One of these words (lower-case). A choice that includes `true` and `false` also
        /// takes every spelling a flag does.
        case choice([String])
    }

    public let key: String
    public let kind: Kind
    /// The default as a specification writes it (`2`, `local`), or how it is derived from the
    /// other options or the run (`the run's seed`): then the builder passes it to the reader.
    public let defaultValue: String

    public init(_ key: String, _ kind: Kind, default defaultValue: String) {
        self.key = key
        self.kind = kind
        self.defaultValue = defaultValue
    }

    /// The values `kind` allows, as the options table and error messages write them.
    public var values: String {
        switch kind {
        case .integer(let range): return Self.describe(range)
        case .number(let range): return "\(range.lowerBound)...\(range.upperBound)"
        case .flag: return "true|false"
        case .choice(let words): return words.joined(separator: "|")
        }
    }

    /// `key (values; default d)`, as `powersgd reducers` lists it.
    public var listing: String { "\(key) (\(values); default \(defaultValue))" }

    /// The seed of a reducer's shared randomness (default: the run's seed).
    public static let seed = ReducerOption("seed", .integer(0...Int.max), default: "the run's seed")

    /// Error feedback around an element-wise exchange: none, classic EF or EF21 (`ErrorFeedback`).
    public static func feedback(default value: String) -> ReducerOption {
        ReducerOption("feedback", .choice(["none", "ef", "ef21"]), default: value)
    }

    static func describe(_ range: ClosedRange<Int>) -> String {
        switch (range.lowerBound == Int.min, range.upperBound == Int.max) {
        case (true, true): return "any integer"
        case (false, true): return "\(range.lowerBound) or more"
        case (true, false): return "at most \(range.upperBound)"
        case (false, false): return "\(range.lowerBound)...\(range.upperBound)"
        }
    }
}

/// Reads typed options out of a `ReducerSpecification` against the options a reducer declares:
/// a value outside its declared range, or an option the reducer does not declare, is an error
/// naming the reducer, the option and what is accepted.
public struct ReducerOptionReader {
    public let specification: ReducerSpecification
    /// The options the reducer accepts, in the order it declares them.
    public let accepted: [ReducerOption]

    public init(_ specification: ReducerSpecification, accepting accepted: [ReducerOption]) {
        self.specification = specification
        self.accepted = accepted
    }

    /// The keys of `accepted`, in order.
    public var known: [String] { accepted.map(\.key) }

    /// The declaration of `key` and the value the specification gives it (the last one written).
    private func lookUp(_ key: String) throws -> (option: ReducerOption, text: String?) {
        guard let option = accepted.first(where: { $0.key == key }) else {
            throw GradientCompressionError.invalidOption("\(specification.name) reads option '\(key)', which it does not declare")
        }
        return (option, specification.options.last(where: { $0.key == key })?.value)
    }

    private func invalid(_ key: String, _ value: String, _ expected: String) -> GradientCompressionError {
        .invalidOption("\(specification.name): \(key)=\(value) is invalid; expected \(expected)")
    }

    private func declaredDefault<T>(_ option: ReducerOption, _ parse: (String) -> T?) throws -> T {
        guard let value = parse(option.defaultValue) else {
            throw GradientCompressionError.invalidOption(
                "\(specification.name)'s option '\(option.key)' defaults to \(option.defaultValue): its builder must give that value")
        }
        return value
    }

    /// An `.integer` option; `value` replaces the declared default when that is derived.
    public func int(_ key: String, default value: Int? = nil) throws -> Int {
        let (option, text) = try lookUp(key)
        guard case .integer(let range) = option.kind else { throw kindMismatch(option, "an integer") }
        guard let text else { return try value ?? declaredDefault(option) { Int($0) } }
        guard let v = Int(text), range.contains(v) else {
            throw invalid(key, text, "an integer in \(ReducerOption.describe(range))")
        }
        return v
    }

    /// A `.number` option (finite); `value` replaces the declared default when that is derived.
    public func double(_ key: String, default value: Double? = nil) throws -> Double {
        let (option, text) = try lookUp(key)
        guard case .number(let range) = option.kind else { throw kindMismatch(option, "a number") }
        guard let text else { return try value ?? declaredDefault(option) { Double($0) } }
        guard let v = Double(text), v.isFinite, range.contains(v) else {
            throw invalid(key, text, "a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A `.flag` option: true, yes, on, 1 or false, no, off, 0.
    public func bool(_ key: String) throws -> Bool {
        let (option, text) = try lookUp(key)
        guard case .flag = option.kind else { throw kindMismatch(option, "a flag") }
        guard let text else { return try declaredDefault(option) { Self.flag($0) } }
        guard let v = Self.flag(text) else { throw invalid(key, text, "true or false") }
        return v
    }

    /// A `.choice` option, lower-cased (a flag spelling in a choice that includes true and
    /// false comes back as `true` or `false`); `value` replaces a derived default.
    public func choice(_ key: String, default value: String? = nil) throws -> String {
        let (option, text) = try lookUp(key)
        guard case .choice(let words) = option.kind else { throw kindMismatch(option, "a choice") }
        guard let text else { return value ?? option.defaultValue }
        let word = text.lowercased()
        if words.contains(word) { return word }
        if words.contains("true"), words.contains("false"), let flag = Self.flag(word) { return flag ? "true" : "false" }
        throw invalid(key, text, "one of \(words.joined(separator: ", "))")
    }

    /// Whether the specification writes `key` (for options whose meaning depends on another's).
    public func isGiven(_ key: String) -> Bool { specification.options.contains { $0.key == key } }

    /// Throws if the specification holds an option the reducer does not declare.
    public func finish() throws {
        for option in specification.options where !known.contains(option.key) {
            let names = known.isEmpty ? "none" : known.joined(separator: ", ")
            throw GradientCompressionError.invalidOption(
                "\(specification.name) has no option '\(option.key)' (accepted: \(names))")
        }
    }

    private func kindMismatch(_ option: ReducerOption, _ asked: String) -> GradientCompressionError {
        .invalidOption("\(specification.name) reads option '\(option.key)' as \(asked), but declares \(option.values)")
    }

    static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }
}
