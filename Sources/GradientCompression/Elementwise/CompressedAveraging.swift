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
    /// (and, if `wantLocal`, this worker's own decoded message). `step` keys the randomness.
    func exchange(_ values: [Tensor], step: Int, over group: any Communicator, wantLocal: Bool) throws -> CompressedExchange
}
