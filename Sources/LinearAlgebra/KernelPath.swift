import CVectorKernels

/// Which implementation a kernel with an AVX2 fast path runs.
///
/// Swift compiles for the x86-64 baseline (SSE2, no FMA) and cannot enable a target feature for
/// one function, so the fast paths are C in `CVectorKernels`, compiled for AVX2 and FMA and called
/// only where the CPU has them. Each keeps a portable Swift path beside it, and the tests compare
/// both with a plain reference (the kernels' documentation says whether bit for bit).
public enum KernelPath: Sendable, Equatable {
    case avx2, portable

    /// `.avx2` where the CPU and OS support AVX2 and FMA (a CPUID check, done once), else `.portable`.
    public static let preferred: KernelPath = vector_kernels_available() == 1 ? .avx2 : .portable
}
