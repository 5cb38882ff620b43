import Datasets
import Foundation

/// Data locations for the tests: the shared data beside the project root found from this
/// source file, so a fresh clone at X/clone reads X/shared/data.
enum DataPaths {
    static let projectRoot = DataLocation.projectRoot(containing: #filePath)!
    static let shared = DataLocation.sharedData(projectRoot: projectRoot)
    static let cifar = shared + "/cifar10-subset"
    static let wikiText = shared + "/wikitext-2"
    static let shakespeare = shared + "/tiny-shakespeare/input.txt"
    static let fashionMNIST = DataLocation.fashionMNIST

    /// A fresh empty directory for broken fixtures.
    static func temporaryDirectory(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "datasets-tests-\(name)-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
