/// A dataset that cannot be read, with a message that names the file and the problem.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// Expected files are not there: names them, the directory, and how to get them.
    case missing(dataset: String, directory: String, files: [String], howToGet: String)
    /// A file exists but its content is not what the format says.
    case corrupt(file: String, reason: String)
    /// An option that makes no sense for this dataset.
    case invalidRequest(String)

    public var description: String {
        switch self {
        case let .missing(dataset, directory, files, howToGet):
            return "\(dataset) not found: expected \(files.joined(separator: ", ")) in \(directory). \(howToGet)"
        case let .corrupt(file, reason):
            return "\(file): \(reason)"
        case let .invalidRequest(message):
            return message
        }
    }
}
