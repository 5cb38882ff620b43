import LinearAlgebra
import NeuralNetworks

/// A workload whose backward pass hands out each gradient as soon as it is final, so that the
/// reducer can work on the last layers' buckets while backward continues (`--overlap`,
/// `OverlappedReduction`).
///
/// `DifferentiallyPrivateWorkload` is not one (`overlapRefusal` says why).
public protocol GradientStreamingWorkload: Workload {
    /// The shapes of the parameters, in parameter order (the gradient list's shapes).
    var parameterShapes: [[Int]] { get }

    /// `computeGradients`, calling `ready(index, gradient)` once for each parameter as soon as its
    /// gradient is final (`GradientReadiness`; reverse parameter order for the models here),
    /// moving the gradient out of the replica as `takeGradients` does. Returns the mean loss.
    func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int,
                          handingOut ready: (Int, Tensor) -> Void) throws -> Float
}

extension DifferentiallyPrivateWorkload {
    /// Why `--overlap` cannot run under DP-SGD.
    public static let overlapRefusal = "DP-SGD clips each example's gradient to its norm over all layers, known only after "
        + "the whole backward pass, and adds the noise to the clipped sum: no gradient is final before backward ends"
}

/// Hands parameter `index`'s gradient to `ready`, keeping no reference to its storage in the
/// parameter (so the reducer writes it in place instead of copying it on write).
func handOut(_ parameters: [Parameter], _ index: Int, to ready: (Int, Tensor) -> Void) {
    let gradient = parameters[index].gradient
    parameters[index].gradient = Tensor(shape: [0])
    ready(index, gradient)
}
