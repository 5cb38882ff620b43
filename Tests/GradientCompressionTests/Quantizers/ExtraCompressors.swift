@testable import GradientCompression

/// Compressors added after the first robustness list (TernGrad, ATOMO, 1-bit SGD).
func extraCompressors() -> [any Compressor] { [try! TernGrad(clip: 2.5), try! ATOMO(budget: 3), OneBitSGD()] }
let extraCompressorCount = 3
