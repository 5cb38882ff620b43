/// A dense tensor of `Float`: a shape and contiguous row-major storage.
///
/// `Tensor` has value semantics (its storage is a Swift array, copied on
/// write). Every algorithm in this package that treats a tensor as a matrix
/// uses the same view: rows are the first dimension, columns the product of
/// the rest (`tensor.view(shape[0], -1)` in PyTorch; ALGORITHMS.md §1.1).
/// A 1-D tensor of length n is the n×1 matrix, a 0-D tensor the 1×1 matrix.
///
/// Hot loops should not index `scalars` element by element; they take the
/// storage once with `withUnsafeBufferPointer` / `withUnsafeMutableBufferPointer`.
public struct Tensor: Sendable, Hashable, Codable {
    /// The extent of each dimension. Empty for a scalar.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.product`.
    public var scalars: [Float]

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape \(shape) has a negative extent")
        self.shape = shape
        self.scalars = [Float](repeating: value, count: Tensor.elementCount(shape))
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    /// - Throws: `LinearAlgebraError.invalidShape` if the counts disagree.
    public init(shape: [Int], scalars: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw LinearAlgebraError.invalidShape(operation: "Tensor(shape:scalars:)", shape: shape,
                                                  reason: "extents must be non-negative")
        }
        let n = Tensor.elementCount(shape)
        guard n == scalars.count else {
            throw LinearAlgebraError.invalidShape(operation: "Tensor(shape:scalars:)", shape: shape,
                                                  reason: "needs \(n) elements, got \(scalars.count)")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of the given shape whose element at flat index `i` is `generator(i)`.
    public init(shape: [Int], generator: (Int) -> Float) {
        self.init(shape: shape)
        for i in scalars.indices { scalars[i] = generator(i) }
    }

    /// The number of elements.
    @inlinable public var count: Int { scalars.count }

    /// The matrix view: rows = first dimension, columns = the product of the rest.
    public var matrixShape: (rows: Int, columns: Int) {
        guard let first = shape.first else { return (1, 1) }
        return (first, first == 0 ? Tensor.elementCount(Array(shape.dropFirst())) : count / first)
    }

    /// The same elements under another shape with the same element count (no copy
    /// until one of the two is written to).
    public func reshaped(to newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 >= 0 }), Tensor.elementCount(newShape) == count else {
            throw LinearAlgebraError.shapeMismatch(operation: "reshape", lhs: shape, rhs: newShape)
        }
        var copy = self
        copy.shape = newShape
        return copy
    }

    /// The product of the extents (1 for a scalar shape).
    @inlinable public static func elementCount(_ shape: [Int]) -> Int {
        shape.reduce(1, *)
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
