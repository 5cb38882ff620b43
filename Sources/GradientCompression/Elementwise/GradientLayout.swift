import LinearAlgebra

/// The shapes of the gradient list a reducer was first called with; later calls must agree.
public struct GradientLayout: Sendable, Equatable {
    public private(set) var shapes: [[Int]]?

    public init() {}

    /// Records the shapes on the first call; afterwards throws if the count or a shape differs.
    public mutating func check(_ gradients: [Tensor]) throws { try check(shapes: gradients.map(\.shape)) }

    /// `check` of a list given by its shapes (a bucketed step's whole list).
    public mutating func check(shapes given: [[Int]]) throws {
        guard let shapes else {
            self.shapes = given
            return
        }
        guard shapes.count == given.count else {
            throw GradientCompressionError.tensorCountMismatch(expected: shapes.count, found: given.count)
        }
        for (i, shape) in given.enumerated() where shape != shapes[i] {
            throw GradientCompressionError.shapeMismatch(tensor: i, expected: shapes[i], found: shape)
        }
    }

    /// The total number of elements.
    public static func elementCount(_ gradients: [Tensor]) -> Int { gradients.reduce(0) { $0 + $1.count } }

    func save(to archive: inout StateWriter) {
        archive.write(shapes != nil)
        if let shapes {
            archive.write(shapes.count)
            for s in shapes { archive.write(s.count); for e in s { archive.write(e) } }
        }
    }

    mutating func restore(from archive: inout StateReader) throws {
        guard try archive.readBool() else { shapes = nil; return }
        let count = try archive.readInt()
        guard (0...1 << 20).contains(count) else {
            throw StateArchiveError.unexpectedValue(expected: "tensor count", offset: archive.offset)
        }
        var result: [[Int]] = []
        for _ in 0..<count {
            let rank = try archive.readInt()
            guard (0...16).contains(rank) else {
                throw StateArchiveError.unexpectedValue(expected: "tensor rank", offset: archive.offset)
            }
            var s: [Int] = []
            for _ in 0..<rank { s.append(try archive.readInt()) }
            result.append(s)
        }
        shapes = result
    }
}
