/// Language-model batches as in PyTorch's word_language_model example, sharded by worker.
///
/// The token stream is cut into W contiguous parts, one per worker; worker r's part is split
/// into `batch` equal columns (the tail that does not fill a column is dropped) and read in
/// windows of `bptt` tokens: window s holds rows s·bptt ..< s·bptt + T of every column as input
/// and the rows one token later as targets (T = bptt, or less for the last window). The hidden
/// state is carried from one window to the next. Every worker has the same number of windows,
/// because every part has the same length.
public struct LanguageModelBatcher: Sendable {
    public let stream: [Int]
    public let batch: Int
    public let bptt: Int
    public let workers: Int
    public let rank: Int
    /// Rows per column of this worker's part.
    public let rows: Int
    private let start: Int

    public init(stream: [Int], batch: Int, bptt: Int, rank: Int, workers: Int) throws {
        guard batch >= 1, bptt >= 1, workers >= 1, (0..<workers).contains(rank) else {
            throw DatasetError.invalidRequest("language-model batches need batch ≥ 1, bptt ≥ 1 and a rank of the workers "
                                              + "(got batch \(batch), bptt \(bptt), rank \(rank) of \(workers))")
        }
        let part = stream.count / workers
        let rows = part / batch
        guard rows >= 2 else {
            throw DatasetError.invalidRequest("\(stream.count) tokens are too few for \(workers) workers × \(batch) columns")
        }
        self.stream = stream
        self.batch = batch
        self.bptt = bptt
        self.workers = workers
        self.rank = rank
        self.rows = rows
        self.start = rank * part
    }

    /// Windows per pass over the part (the last target row is the part's last row).
    public var windows: Int { (rows - 1 + bptt - 1) / bptt }

    /// Window `index`: input and target token ids in `[T, batch]` row-major order, and T.
    public func window(_ index: Int) -> (input: [Int], targets: [Int], steps: Int) {
        let first = index * bptt
        let steps = min(bptt, rows - 1 - first)
        var input = [Int](repeating: 0, count: steps * batch), targets = input
        for t in 0..<steps {
            for b in 0..<batch {
                let position = start + b * rows + first + t
                input[t * batch + b] = stream[position]
                targets[t * batch + b] = stream[position + 1]
            }
        }
        return (input, targets, steps)
    }
}
