/// Every buffer PowerSGD's step reads or writes, allocated for one layout and reused from step
/// to step, each at a fixed address so the step can hold all of them at once.
///
/// State, carried from step to step and checkpointed: `q` (Q̄ of every compressed tensor, the
/// warm start), `error` (the error memories E — or, while `hasPendingResidual`, M of the last
/// step with the residual correction P̂·Q_cᵀ still to subtract) and that correction's factors
/// `pendingP`, `pendingQ`; with `alternate`, also `p` (the last reduced P). Scratch, rewritten by
/// every standard step: `p` (P, then P̂), `localQ` (Q_w
/// before its all-reduce), `uncompressed` (the packed exact tensors) and the two m×r transposes
/// `qt` and `pendingQt` of one tensor at a time.
///
/// A class so that the buffers have stable addresses without nested `withUnsafe…` closures;
/// `PowerSGD` copies it before a step when a copy of the reducer shares it, so reducers keep
/// value semantics.
final class PowerStepWorkspace {
    private(set) var q = Buffer.zeros(0)
    private(set) var error = Buffer.zeros(0)
    var hasPendingResidual = false
    private(set) var pendingP = Buffer.zeros(0)
    private(set) var pendingQ = Buffer.zeros(0)
    private(set) var p = Buffer.zeros(0)
    private(set) var localQ = Buffer.zeros(0)
    private(set) var uncompressed = Buffer.zeros(0)
    private(set) var qt = Buffer.zeros(0)
    private(set) var pendingQt = Buffer.zeros(0)

    init() {}

    /// A zero-filled Float buffer, freed by its workspace. Its base address is valid even when
    /// it is empty (the kernels and collectives take a base pointer for every buffer).
    struct Buffer {
        let pointer: UnsafeMutableBufferPointer<Float>
        var count: Int { pointer.count }
        var base: UnsafeMutablePointer<Float> { pointer.baseAddress! }
        var array: [Float] { Array(pointer) }
        subscript(i: Int) -> Float {
            get { pointer[i] }
            nonmutating set { pointer[i] = newValue }
        }

        static func zeros(_ count: Int) -> Buffer {
            let start = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
            start.initialize(repeating: 0, count: max(1, count))
            return Buffer(pointer: UnsafeMutableBufferPointer(start: start, count: count))
        }

        static func copy(of values: some Collection<Float>) -> Buffer {
            let b = zeros(values.count)
            if values.count > 0 { _ = b.pointer.update(fromContentsOf: values) }
            return b
        }

        func free() { pointer.baseAddress!.deallocate() }

        /// Elements `range` (a bucket's part of a packed buffer).
        func window(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(rebasing: pointer[range]) }

        /// Copies elements `range` of `source` into the same elements of this buffer.
        func update(_ range: Range<Int>, from source: Buffer) {
            (base + range.lowerBound).update(from: source.base + range.lowerBound, count: range.count)
        }
    }

    deinit { for b in [q, error, pendingP, pendingQ, p, localQ, uncompressed, qt, pendingQt] { b.free() } }

    /// Makes `buffer` hold `count` zeros unless it already has that size.
    private func fit(_ buffer: inout Buffer, _ count: Int) {
        guard buffer.count != count else { return }
        buffer.free()
        buffer = .zeros(count)
    }

    /// Sizes the state buffers for `layout` (keeping them when they fit; the error memory only
    /// with error feedback).
    func fitState(to layout: MatrixLayout, errorFeedback: Bool) {
        fit(&q, layout.qCount)
        if errorFeedback { fit(&error, layout.compressedCount) }
    }

    /// Sizes the buffers a power step uses for `layout`.
    func fitStep(to layout: MatrixLayout, errorFeedback: Bool) {
        fitState(to: layout, errorFeedback: errorFeedback)
        fit(&p, layout.pCount)
        fit(&localQ, layout.qCount)
        fit(&uncompressed, layout.uncompressedCount)
        let thin = layout.entries.map { $0.rank * $0.columns }.max() ?? 0
        fit(&qt, thin)
        fit(&pendingQt, thin)
        if errorFeedback, pendingP.count != layout.pCount || pendingQ.count != layout.qCount {
            fit(&pendingP, layout.pCount)
            fit(&pendingQ, layout.qCount)
        }
    }

    func replaceQ(_ values: [Float]) { q.free(); q = .copy(of: values) }
    func replaceP(_ values: [Float]) { p.free(); p = .copy(of: values) }
    func replaceError(_ values: [Float]) { error.free(); error = .copy(of: values) }
    func replacePending(p newP: [Float], q newQ: [Float]) {
        pendingP.free(); pendingP = .copy(of: newP)
        pendingQ.free(); pendingQ = .copy(of: newQ)
    }

    /// An independent copy (state and scratch), for a reducer that was copied.
    func copy() -> PowerStepWorkspace {
        let c = PowerStepWorkspace()
        c.q = .copy(of: q.pointer); c.error = .copy(of: error.pointer)
        c.hasPendingResidual = hasPendingResidual
        c.pendingP = .copy(of: pendingP.pointer); c.pendingQ = .copy(of: pendingQ.pointer)
        c.p = .copy(of: p.pointer); c.localQ = .copy(of: localQ.pointer); c.uncompressed = .copy(of: uncompressed.pointer)
        c.qt = .copy(of: qt.pointer); c.pendingQt = .copy(of: pendingQt.pointer)
        return c
    }
}
