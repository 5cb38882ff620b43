#if canImport(Glibc)
import Glibc
#endif

/// Process-wide tuning of the C allocator for training: call `apply()` once at start-up,
/// before the first large buffer is allocated.
///
/// Each training step allocates and frees the same large buffers (gradients, messages, averages;
/// ResNet-18's gradient is 44.7 MB, above glibc's largest dynamic mmap threshold). By default glibc
/// maps fresh pages for every buffer above 128 KiB–32 MiB and unmaps them on free, so each step
/// pays a page fault and a page clear per 4 KiB on first touch: measured ~20 ms per step of the
/// fp16 reducer at W = 2. Reusing freed heap memory is what PyTorch's caching allocator does for
/// the same reason. The price is that the process keeps its peak heap until it exits.
public enum AllocatorTuning {
    /// Makes glibc serve allocations up to 1 GiB from its heap and never return the heap's top to
    /// the system. Returns whether the tuning took effect: false where the C library has no
    /// `mallopt` (not glibc), which leaves the allocator as it was.
    @discardableResult
    public static func apply() -> Bool {
        #if canImport(Glibc)
        // mallopt is declared in <malloc.h>, which the Glibc module does not import; its parameter
        // names are macros (M_TRIM_THRESHOLD = −1, M_MMAP_THRESHOLD = −3 in glibc's malloc.h).
        typealias MallocOption = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }
        let mallopt = unsafeBitCast(symbol, to: MallocOption.self)
        let mmap = mallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD: mmap only above 1 GiB
        let trim = mallopt(-1, Int32.max)  // M_TRIM_THRESHOLD: never give the heap's top back
        return mmap == 1 && trim == 1  // mallopt returns 1 on success
        #else
        return false
        #endif
    }
}
