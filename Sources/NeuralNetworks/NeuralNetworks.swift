/// # NeuralNetworks
///
/// A small CPU neural-network engine for the PowerSGD experiments: layers with explicit
/// forward and backward passes, models (MLP, CIFAR ResNets, LSTM language model), softmax
/// cross-entropy, and SGD with momentum and learning-rate schedules.
///
/// ## Why explicit backward passes, not a tape
/// The models here are fixed stacks of a dozen layer kinds. Writing each layer's backward
/// pass next to its forward pass (as llm.c does) keeps the math checkable line by line
/// against the formulas in the doc comments, lets each layer cache exactly what its
/// backward needs (a reference to its input, not a graph of intermediate tensors), and
/// lets the hot paths be a few large BLAS products over reused buffers: a convolution's
/// forward and backward are three `sgemm` calls over im2col blocks, an LSTM's are one
/// product per time step plus three over the whole sequence. A tape would add a graph,
/// per-operation allocation and generic dispatch for no extra capability here.
///
/// ## Layouts
/// Dense layers take `[N, features]`. Spatial layers take channel-major `[C, B, H, W]`
/// (see `Layer`); models accept PyTorch's `[B, C, H, W]` and convert once.
///
/// ## Threads
/// Everything runs on the calling thread unless a layer is given `threads > 1`
/// (channel-parallel loops with `DispatchQueue.concurrentPerform`); the BLAS products use
/// `BLASThreads.count` threads, a process-wide setting the caller chooses (1 when training
/// workers are threads or MPI ranks on every core).
public enum NeuralNetworks {}
