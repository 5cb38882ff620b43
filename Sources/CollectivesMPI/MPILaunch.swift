import Foundation

/// What an MPI launcher tells the processes it starts, through their environment: the job's size
/// and this process's rank, readable before MPI is initialized.
///
/// OpenMPI's `mpirun` sets `OMPI_COMM_WORLD_SIZE` and `OMPI_COMM_WORLD_RANK`; PMI launchers
/// (MPICH's Hydra, Slurm's `srun`) set `PMI_SIZE` and `PMI_RANK`.
public struct MPILaunch: Sendable, Equatable {
    /// The variable that holds the size, as the launcher named it.
    public var sizeVariable: String
    public var worldSize: Int
    /// This process's rank (0 when the launcher gave none).
    public var rank: Int

    /// The launch this process was started by, or nil when no launcher started it.
    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        for (sizeVariable, rankVariable) in [("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"), ("PMI_SIZE", "PMI_RANK")] {
            if let text = environment[sizeVariable], let size = Int(text) {
                self.sizeVariable = sizeVariable
                worldSize = size
                rank = environment[rankVariable].flatMap { Int($0) } ?? 0
                return
            }
        }
        return nil
    }
}
