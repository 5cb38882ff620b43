import Testing
@testable import LinearAlgebra

@Suite struct AllocatorTuningTests {
    /// On glibc both mallopt calls must be accepted; elsewhere the tuning reports that it did nothing.
    @Test func appliesWhereTheCLibraryIsGlibc() {
        #if canImport(Glibc)
        #expect(AllocatorTuning.apply())
        #else
        #expect(!AllocatorTuning.apply())
        #endif
    }
}
