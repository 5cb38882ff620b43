import Collectives

/// What a rank is about to do, as the fixed-size integer record the validation mode compares
/// across ranks (see `MPICommunicator.validate`).
struct CallSignature: Equatable {
    enum Operation: Equatable {
        case allReduce(ReduceOperation), allGather, broadcastFloats, broadcastBytes, barrier
        case allReduceHalf(HalfWidthFormat, ReduceOperation)

        static let reduceOperations: [ReduceOperation] = [.sum, .mean, .max]

        var code: Int64 {
            switch self {
            case .allReduce(.sum): return 1
            case .allReduce(.mean): return 2
            case .allReduce(.max): return 3
            case .allGather: return 4
            case .broadcastFloats: return 5
            case .broadcastBytes: return 6
            case .barrier: return 7
            case let .allReduceHalf(format, op):
                // 8…10 fp16 sum/mean/max, 11…13 bf16 sum/mean/max.
                return 8 + 3 * Int64(HalfWidthFormat.allCases.firstIndex(of: format)!)
                    + Int64(Self.reduceOperations.firstIndex(of: op)!)
            }
        }

        init?(code: Int64) {
            switch code {
            case 1: self = .allReduce(.sum)
            case 2: self = .allReduce(.mean)
            case 3: self = .allReduce(.max)
            case 4: self = .allGather
            case 5: self = .broadcastFloats
            case 6: self = .broadcastBytes
            case 7: self = .barrier
            case 8 ... 13:
                let index = Int(code - 8)
                self = .allReduceHalf(HalfWidthFormat.allCases[index / 3], Self.reduceOperations[index % 3])
            default: return nil
            }
        }

        /// Whether the element count must agree across ranks (not for all-gather, whose messages
        /// may differ, nor a byte broadcast, whose length is the root's).
        var countsMustAgree: Bool {
            switch self {
            case .allGather, .broadcastBytes: return false
            default: return true
            }
        }
    }

    var operation: Operation
    var count: Int
    var root: Int

    init(operation: Operation, count: Int, root: Int) {
        self.operation = operation
        self.count = count
        self.root = root
    }

    /// The compared fields: operation code, element count (−1 where counts may differ), root.
    var fields: [Int64] {
        [operation.code, operation.countsMustAgree ? Int64(count) : -1, Int64(root)]
    }

    init(fields: [Int64]) {
        operation = Operation(code: fields[0]) ?? .barrier
        count = Int(fields[1])
        root = Int(fields[2])
    }

    static func == (a: CallSignature, b: CallSignature) -> Bool { a.fields == b.fields }

    /// The same wording as `InProcessGroup`'s mismatch messages.
    var summary: String {
        switch operation {
        case let .allReduce(op): return "allReduce.\(op.rawValue)(\(count) elements)"
        case let .allReduceHalf(format, op): return "allReduce.\(format.rawValue).\(op.rawValue)(\(count) elements)"
        case .allGather: return "allGather"
        case .broadcastFloats: return "broadcast(\(count) elements, root \(root))"
        case .broadcastBytes: return "broadcast(bytes, root \(root))"
        case .barrier: return "barrier"
        }
    }
}
