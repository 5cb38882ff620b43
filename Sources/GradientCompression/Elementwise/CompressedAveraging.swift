import Collectives
import LinearAlgebra

/// What a compressed exchange produced on this worker.
public struct CompressedExchange {
    /// The group average of the decoded messages, identical on every worker.
    public var average: [Tensor]
    /// This worker's own decoded message, D(C(values)), when it was asked for (error feedback needs it).
    public var local: [Tensor]?
}

/// A reducer built on one compressed exchange: every worker compresses a list of tensors, and
/// everyone obtains the average of the decompressed messages. Error feedback (`ErrorFeedback`)
/// wraps any of these, deciding *what* is compressed (g + e for EF, g − g_w for EF21).
public protocol CompressedAveraging: GradientReducer {
    /// Compresses `values`, exchanges the messages, and returns their decoded average
    /// (and, if `wantLocal`, this worker's own decoded message). `step` and the tensor's index in
    /// the model's list — `firstTensor` + its index in `values`, so that a bucket draws what the
    /// whole list would — key the randomness.
    func exchange(_ values: [Tensor], firstTensor: Int, step: Int, over group: any Communicator,
                  wantLocal: Bool) throws -> CompressedExchange
}

extension CompressedAveraging {
    /// The exchange of a whole gradient list.
    public func exchange(_ values: [Tensor], step: Int, over group: any Communicator, wantLocal: Bool) throws -> CompressedExchange {
        try exchange(values, firstTensor: 0, step: step, over: group, wantLocal: wantLocal)
    }
}

/// A reducer that exchanges the messages of one element-wise `Compressor`: the tests reach the
/// compressor behind every catalog entry through it (to fuzz its decoder and check its input
/// policy), so a new method is covered once it is in the catalog.
public protocol CompressorBacked {
    var backingCompressor: any Compressor { get }
}

extension AllGatherReducer: CompressorBacked {
    public var backingCompressor: any Compressor { compressor }
}

extension AllReduceReducer: CompressorBacked where L: Compressor {
    public var backingCompressor: any Compressor { compressor }
}

extension ErrorFeedback: CompressorBacked where Inner: CompressorBacked {
    public var backingCompressor: any Compressor { inner.backingCompressor }
}

extension MajorityVoteReducer: CompressorBacked {
    public var backingCompressor: any Compressor { signs }
}
