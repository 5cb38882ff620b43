/// The 62 parameter shapes of the CIFAR ResNet-18 of the PowerSGD paper, in registration order
/// (the same list as shared/peers/resnet18_shapes.py): 11,173,962 parameters.
func resNet18Shapes(classes: Int = 10) -> [[Int]] {
    var shapes: [[Int]] = [[64, 3, 3, 3], [64], [64]]
    var inputs = 64
    for (planes, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
        for block in 0..<2 {
            let s = block == 0 ? stride : 1
            shapes += [[planes, inputs, 3, 3], [planes], [planes], [planes, planes, 3, 3], [planes], [planes]]
            if s != 1 || inputs != planes { shapes += [[planes, inputs, 1, 1], [planes], [planes]] }
            inputs = planes
        }
    }
    return shapes + [[classes, 512], [classes]]
}
