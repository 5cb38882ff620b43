import Foundation

/// Where the datasets are by default.
///
/// The project's shared data lives beside the repository: a checkout at `X/main` (or any clone
/// `X/clone`) finds it at `X/shared/data`, i.e. `<project root>/../shared/data`. Fashion-MNIST is
/// installed system-wide by the Debian package `dataset-fashion-mnist`.
public enum DataLocation {
    /// `/usr/share/datasets/fashion-mnist`, where `dataset-fashion-mnist` installs the IDX files.
    public static let fashionMNIST = ImageDataset.fashionMNISTDirectory

    /// `<projectRoot>/../shared/data`, standardized.
    public static func sharedData(projectRoot: String) -> String {
        URL(fileURLWithPath: projectRoot).appendingPathComponent("../shared/data").standardizedFileURL.path
    }

    /// The nearest directory at or above `path` that holds a `Package.swift`: the project root of
    /// a source file (tests pass `#filePath`) or of a working directory. Nil when there is none.
    public static func projectRoot(containing path: String) -> String? {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        let fm = FileManager.default
        while true {
            if fm.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
            let parent = url.deletingLastPathComponent()
            if parent.path == url.path { return nil }
            url = parent
        }
    }
}
