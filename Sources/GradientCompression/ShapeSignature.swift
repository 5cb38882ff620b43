import Collectives

/// A check that every worker holds gradients of the same shapes, before a reducer builds
/// per-tensor state: a 64-bit FNV-1a hash of the shape list and the tensor count, as five floats
/// that are exact integers (16 bits each), all-reduced with max and with max of the negation
/// (= min). Equal maxima and minima mean every worker sent the same signature.
enum ShapeSignature {
    static func agree(on shapes: [[Int]], group: any Communicator) throws {
        guard group.size > 1 else { return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for shape in shapes {
            for extent in shape + [-1] {
                for byte in withUnsafeBytes(of: Int64(extent).littleEndian, Array.init) {
                    hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
                }
            }
        }
        let own: [Float] = (0..<4).map { Float((hash >> (16 * UInt64($0))) & 0xffff) } + [Float(min(shapes.count, 1 << 24))]
        var maximum = own
        var negatedMinimum = own.map { -$0 }
        try group.allReduce(&maximum, operation: .max)
        try group.allReduce(&negatedMinimum, operation: .max)
        guard maximum == negatedMinimum.map({ -$0 }) else {
            throw GradientCompressionError.inconsistentWorkers(
                "the workers' gradient lists differ (this worker, rank \(group.rank), has \(shapes.count) tensors: "
                + "\(shapes.prefix(4).map { "\($0)" }.joined(separator: ", "))\(shapes.count > 4 ? ", …" : ""))")
        }
    }
}

/// Error-feedback kernels shared by the low-rank reducers.
enum ErrorFeedbackKernels {
    /// e ← e + g, returning Σ (e + g)²: the error-corrected input and its squared norm in one pass.
    static func accumulate(_ g: UnsafeBufferPointer<Float>, into e: UnsafeMutableBufferPointer<Float>) -> Float {
        precondition(g.count == e.count)
        guard let gp = g.baseAddress, let ep = e.baseAddress else { return 0 }
        let n = g.count
        var acc = SIMD16<Float>()
        var i = 0
        while i &+ 16 <= n {
            let m = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self) + UnsafeRawPointer(ep + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(ep + i).storeBytes(of: m, as: SIMD16<Float>.self)
            acc += m * m
            i &+= 16
        }
        var tail: Float = 0
        while i < n { let m = gp[i] + ep[i]; ep[i] = m; tail += m * m; i &+= 1 }
        return acc.sum() + tail
    }
}
