import Foundation

/// Labeled images as they are stored: bytes `[N, C, H, W]` (0…255) and one label per image,
/// with the per-channel mean and standard deviation (in 0…1 units) that normalize them.
public struct ImageDataset: Sendable {
    public var name: String
    public var pixels: [UInt8]
    public var labels: [UInt8]
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classes: Int
    public var mean: [Float]
    public var standardDeviation: [Float]

    public var count: Int { labels.count }
    public var imageSize: Int { channels * height * width }

    public enum Split: String, Sendable { case train, test }

    /// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 60,000 + 10,000 grey 28×28 images in IDX files,
    /// gzip-compressed or not. Normalization: mean 0.2860, std 0.3530 (the training set's values).
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    public static func fashionMNIST(directory: String = fashionMNISTDirectory, split: Split) throws -> ImageDataset {
        let prefix = split == .train ? "train" : "t10k"
        let images = try locate(["\(prefix)-images-idx3-ubyte.gz", "\(prefix)-images-idx3-ubyte"], in: directory, dataset: "Fashion-MNIST",
                                howToGet: "Install the Debian package dataset-fashion-mnist (scripts/bootstrap.sh does), "
                                    + "or download the four files from https://github.com/zalandoresearch/fashion-mnist into --data-dir.")
        let labels = try locate(["\(prefix)-labels-idx1-ubyte.gz", "\(prefix)-labels-idx1-ubyte"], in: directory, dataset: "Fashion-MNIST",
                                howToGet: "Install the Debian package dataset-fashion-mnist, or download it from https://github.com/zalandoresearch/fashion-mnist.")
        let imageFile = try IDXFile(path: images), labelFile = try IDXFile(path: labels)
        guard imageFile.dimensions.count == 3 else {
            throw DatasetError.corrupt(file: images, reason: "has dimensions \(imageFile.dimensions), expected [N, rows, columns]")
        }
        guard labelFile.dimensions == [imageFile.dimensions[0]] else {
            throw DatasetError.corrupt(file: labels, reason: "holds \(labelFile.dimensions) labels for \(imageFile.dimensions[0]) images in \(images)")
        }
        if let bad = labelFile.bytes.firstIndex(where: { $0 > 9 }) {
            throw DatasetError.corrupt(file: labels, reason: "label \(labelFile.bytes[bad]) of image \(bad) is outside 0…9")
        }
        return ImageDataset(name: "fashion-mnist-\(split.rawValue)", pixels: imageFile.bytes, labels: labelFile.bytes,
                            channels: 1, height: imageFile.dimensions[1], width: imageFile.dimensions[2], classes: 10,
                            mean: [0.2860], standardDeviation: [0.3530])
    }

    /// CIFAR-10, binary version (Krizhevsky 2009): 3073-byte records, a label byte (0…9) then
    /// 1024 red, 1024 green, 1024 blue bytes of a 32×32 image. Reads whichever of
    /// `data_batch_1.bin` … `data_batch_5.bin` (train) or `test_batch.bin` (test) the directory holds.
    /// Normalization: the usual per-channel mean (0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435, 0.2616).
    public static func cifar10(directory: String, split: Split) throws -> ImageDataset {
        let names = split == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        let present = names.filter { FileManager.default.fileExists(atPath: directory + "/" + $0) }
        guard !present.isEmpty else {
            throw DatasetError.missing(dataset: "CIFAR-10 (\(split.rawValue))", directory: directory, files: names,
                                       howToGet: "Download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html "
                                       + "(cifar-10-binary.tar.gz) and unpack it into --data-dir.")
        }
        var pixels: [UInt8] = [], labels: [UInt8] = []
        for name in present {
            let path = directory + "/" + name
            let data = try CompressedFile.read(path)
            guard !data.isEmpty, data.count % 3073 == 0 else {
                throw DatasetError.corrupt(file: path, reason: "is \(data.count) bytes, not a positive multiple of the 3073-byte CIFAR-10 record")
            }
            pixels.reserveCapacity(pixels.count + data.count / 3073 * 3072)
            for record in 0..<(data.count / 3073) {
                let base = record * 3073
                guard data[base] <= 9 else {
                    throw DatasetError.corrupt(file: path, reason: "record \(record) has label \(data[base]), outside 0…9")
                }
                labels.append(data[base])
                pixels.append(contentsOf: data[(base + 1)..<(base + 3073)])
            }
        }
        return ImageDataset(name: "cifar10-\(split.rawValue)", pixels: pixels, labels: labels, channels: 3, height: 32, width: 32,
                            classes: 10, mean: [0.4914, 0.4822, 0.4465], standardDeviation: [0.2470, 0.2435, 0.2616])
    }

    static func locate(_ candidates: [String], in directory: String, dataset: String, howToGet: String) throws -> String {
        for name in candidates where FileManager.default.fileExists(atPath: directory + "/" + name) { return directory + "/" + name }
        throw DatasetError.missing(dataset: dataset, directory: directory, files: [candidates[0]], howToGet: howToGet)
    }
}
