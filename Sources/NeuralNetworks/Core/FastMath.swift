/// Scalar elementary functions written so that a plain loop over them vectorizes (selects,
/// float arithmetic and integer shifts by constants only; no calls into libm).
public enum FastMath {
    /// eˣ, Cephes `expf` (S. Moshier): x = n·ln2 + r with n = round(x/ln2), |r| ≤ ln2/2, ln2
    /// split in two constants (C₁ = 0.693359375 has 9 significant bits, so n·C₁ is exact);
    /// eʳ by its degree-6 minimax polynomial; 2ⁿ built in the exponent bits. Rounding to
    /// nearest adds 1.5·2²³, after which the float's low mantissa bits hold n. Inputs are
    /// clamped to [−87.3, 88.3] so 2ⁿ stays a normal float: the result is finite and exp of a
    /// very negative x is ≈ 1e-38 instead of 0, below a Float sum's resolution whenever one
    /// term is ≥ 1 (as in softmax after subtracting the maximum). Relative error < 3e-7.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        var v = x < -87.3 ? -87.3 : x
        v = v > 88.3 ? 88.3 : v
        let magic: Float = 12_582_912
        let shifted = v * 1.442_695_04 + magic
        let n = shifted - magic
        var r = v - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let er = p * (r * r) + r + 1
        let exponent = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: magic.bitPattern)
        let scale = Float(bitPattern: UInt32(bitPattern: (exponent &+ 127) &<< 23))
        return er * scale
    }

    /// σ(x) = 1/(1 + e⁻ˣ).
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// tanh(x) = 1 − 2/(e²ˣ + 1): exact limits ±1 for large |x|; near 0 the absolute error is
    /// ~1e-7, which is what the LSTM's gates and cell need (absolute, not relative, accuracy).
    @inline(__always)
    public static func tanh(_ x: Float) -> Float { 1 - 2 / (exp(2 * x) + 1) }
}
