import COpenBLAS

/// The kernel family OpenBLAS chose for this CPU when it loaded (`openblas_get_corename`: e.g.
/// Haswell, Zen, SkylakeX; `OPENBLAS_CORETYPE` overrides the choice).
///
/// LAPACK routines (SVD, Householder QR) round differently per family: AVX-512 machines get
/// SkylakeX kernels, AVX2 ones Haswell or Zen. Computations built on them are deterministic per
/// family, so bit-for-bit records of them are kept per family.
public enum BLASCore {
    public static let name: String = String(cString: openblas_get_corename())
}
