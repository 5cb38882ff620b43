@testable import GradientCompression

/// Compressors added after the first robustness list (TernGrad, ATOMO, 1-bit SGD).
func extraCompressors() -> [any Compressor] { [] }
let extraCompressorCount = 0
