/// Gradient shapes of reference models, for tests and benchmarks of reducers without building
/// the models (the NeuralNetworks module builds the real ones).
public enum ModelShapes {
    /// CIFAR-style ResNet-18 (3×3 stem to 64 channels, four stages of two basic blocks at
    /// 64/128/256/512 channels with 1×1 downsampling convolutions, batch-norm scale and shift
    /// after every convolution, a 512→classes linear layer): 62 tensors and 11,173,962
    /// parameters for 10 classes, in the order of `/work/shared/peers/resnet18_shapes.py`
    /// (the PyTorch peer's parameter order).
    public static func resnet18(classes: Int = 10) -> [[Int]] {
        var shapes: [[Int]] = [[64, 3, 3, 3], [64], [64]]
        var inputs = 64
        for (planes, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
            for block in 0..<2 {
                let blockStride = block == 0 ? stride : 1
                shapes += [[planes, inputs, 3, 3], [planes], [planes], [planes, planes, 3, 3], [planes], [planes]]
                if blockStride != 1 || inputs != planes { shapes += [[planes, inputs, 1, 1], [planes], [planes]] }
                inputs = planes
            }
        }
        shapes += [[classes, 512], [classes]]
        return shapes
    }
}
