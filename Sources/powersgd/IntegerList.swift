import ArgumentParser

/// A comma-separated list of integers in `range`, or a usage error naming `flag`.
func integers(_ text: String, _ flag: String, _ range: ClosedRange<Int>) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ $0.map(range.contains) ?? false }) else {
        throw ValidationError("\(flag) \(text): expected comma-separated integers in \(range.lowerBound)...\(range.upperBound)")
    }
    return values.map { $0! }
}
