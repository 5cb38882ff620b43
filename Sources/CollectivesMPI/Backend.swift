/// Where the workers of a run live: the transport their communicators use.
public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Workers as threads of this process (`InProcessGroup`), the embedded default.
    case threads
    /// One worker per MPI rank (`MPICommunicator`), the processes started by `mpirun -np N`.
    case mpi

    public var description: String { rawValue }

    /// What the backend is, for `--help`.
    public var summary: String {
        switch self {
        case .threads: "workers as threads of this process"
        case .mpi: "one worker per MPI rank, launched by mpirun"
        }
    }
}
