import LinearAlgebra

extension Tensor {
    /// The storage's base address for the duration of `body` (callers check `count > 0` first).
    @inlinable
    func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    @inlinable
    mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// A tensor whose storage is written entirely by `fill` (no zero-filling first).
    @inlinable
    static func filled(shape: [Int], _ fill: (UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let n = Tensor.elementCount(shape)
        let scalars = [Float](unsafeUninitializedCapacity: n) { buffer, count in
            if n > 0 { fill(buffer.baseAddress!, n) }
            count = n
        }
        // The element count matches the shape by construction, so this cannot throw.
        return try! Tensor(shape: shape, scalars: scalars)
    }
}

/// A raw pointer that may cross into `DispatchQueue.concurrentPerform` closures; each
/// iteration writes a disjoint range, which is what makes sharing it safe.
@usableFromInline
struct SharedPointer: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutablePointer<Float>
    @usableFromInline init(_ base: UnsafeMutablePointer<Float>) { self.base = base }
    @usableFromInline init(_ base: UnsafePointer<Float>) { self.base = UnsafeMutablePointer(mutating: base) }
}

/// Any value carried into a `concurrentPerform` closure whose iterations touch disjoint parts of it.
@usableFromInline
struct UncheckedSendable<Value>: @unchecked Sendable {
    @usableFromInline let value: Value
    @usableFromInline init(_ value: Value) { self.value = value }
}
