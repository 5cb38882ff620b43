import CollectivesMPI
import Testing

/// The launcher is recognised from the environment alone, OpenMPI's variables first.
@Suite struct MPILaunchEnvironmentTests {
    @Test func readsOpenMPIAndPMIVariables() {
        let openMPI = MPILaunch(environment: ["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2", "PMI_SIZE": "8"])
        #expect(openMPI?.sizeVariable == "OMPI_COMM_WORLD_SIZE" && openMPI?.worldSize == 4 && openMPI?.rank == 2)
        let pmi = MPILaunch(environment: ["PMI_SIZE": "3"])
        #expect(pmi?.sizeVariable == "PMI_SIZE" && pmi?.worldSize == 3 && pmi?.rank == 0)
    }

    @Test func noLauncherIsNil() {
        #expect(MPILaunch(environment: [:]) == nil)
        #expect(MPILaunch(environment: ["OMPI_COMM_WORLD_SIZE": "many"]) == nil)
    }
}
