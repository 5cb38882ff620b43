import CVectorKernels

/// Which implementation a kernel with a vector fast path runs.
///
/// Swift compiles for the x86-64 baseline (SSE2, no FMA) and cannot enable a target feature for
/// one function, so the fast paths are C in `CVectorKernels`, compiled for AVX2 and FMA (and for
/// AVX-512 where a kernel has such a version) and called only where the CPU has them. Each keeps a
/// portable Swift path beside it, and the tests compare both with a plain reference (the kernels'
/// documentation says whether bit for bit).
public enum KernelPath: String, Sendable, Equatable {
    /// AVX-512F/CD/VL kernels where they exist, the AVX2 ones elsewhere.
    case avx512
    case avx2
    case portable

    /// The widest path the CPU and OS support (CPUID and XGETBV checks, done once).
    public static let preferred: KernelPath =
        vector_kernels_avx512_available() == 1 ? .avx512 : vector_kernels_available() == 1 ? .avx2 : .portable

    /// Whether the AVX2/FMA kernels may run: on `.avx2`, and on `.avx512` (whose check includes AVX2
    /// and FMA) for the kernels without an AVX-512 version.
    public var hasAVX2: Bool { self != .portable }
}
