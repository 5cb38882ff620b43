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

/// Reads typed options out of a `ReducerSpecification`, remembering which were used, so that a
/// misspelt or unknown option is an error naming the reducer and the options it accepts.
public struct ReducerOptionReader {
    public let specification: ReducerSpecification
    /// The option keys asked for so far, in order: after a reducer is built, every option it accepts.
    public private(set) var known: [String] = []

    public init(_ specification: ReducerSpecification) { self.specification = specification }

    private mutating func raw(_ key: String) -> String? {
        known.append(key)
        return specification.options.last(where: { $0.key == key })?.value
    }

    private func invalid(_ key: String, _ value: String, _ expected: String) -> GradientCompressionError {
        .invalidOption("\(specification.name): \(key)=\(value) is invalid; expected \(expected)")
    }

    public mutating func int(_ key: String, default value: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let text = raw(key) else { return value }
        guard let v = Int(text), range.contains(v) else { throw invalid(key, text, "an integer in \(describe(range))") }
        return v
    }

    public mutating func double(_ key: String, default value: Double,
                                in range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude) throws -> Double {
        guard let text = raw(key) else { return value }
        guard let v = Double(text), v.isFinite, range.contains(v) else {
            throw invalid(key, text, "a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    public mutating func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let text = raw(key) else { return value }
        if Self.trueWords.contains(text.lowercased()) { return true }
        if Self.falseWords.contains(text.lowercased()) { return false }
        throw invalid(key, text, "true or false")
    }

    /// The spellings `bool` reads as true and as false.
    public static let trueWords = ["true", "yes", "on", "1"]
    public static let falseWords = ["false", "no", "off", "0"]

    public mutating func choice(_ key: String, default value: String, among choices: [String]) throws -> String {
        guard let text = raw(key) else { return value }
        guard choices.contains(text.lowercased()) else { throw invalid(key, text, "one of \(choices.joined(separator: ", "))") }
        return text.lowercased()
    }

    /// Throws if the specification holds an option no getter asked for.
    public func finish() throws {
        for option in specification.options where !known.contains(option.key) {
            let accepted = known.isEmpty ? "none" : known.joined(separator: ", ")
            throw GradientCompressionError.invalidOption(
                "\(specification.name) has no option '\(option.key)' (accepted: \(accepted))")
        }
    }

    private func describe(_ range: ClosedRange<Int>) -> String {
        switch (range.lowerBound == Int.min, range.upperBound == Int.max) {
        case (true, true): return "any range"
        case (false, true): return "\(range.lowerBound) or more"
        case (true, false): return "at most \(range.upperBound)"
        case (false, false): return "\(range.lowerBound)...\(range.upperBound)"
        }
    }
}
