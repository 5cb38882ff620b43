import Foundation

/// Runs one MPI job on an `EmulatedCluster`: one rank per host, `mpirun` itself inside host 0's
/// namespace, TCP only, and reports the kernel's and the ledger's bytes per host.
///
/// `mpirun` starts the daemons of the other hosts through `plm_rsh_agent`, a generated script
/// that runs the daemon's command line in the host's namespace (`ip netns exec <ns> sh -c ...`)
/// where `ssh` would log into the host. Both the job's MPI traffic (`btl tcp,self`, no shared
/// memory) and the launcher's own (ORTE's out-of-band channel) are bound to the emulated
/// subnet, so every byte between ranks crosses two shaped links (upload of the sender, download
/// of the receiver). Collectives use the ring algorithms the network model prices.
public final class ClusterJob {
    public let cluster: EmulatedCluster
    /// The program and its arguments each rank runs.
    public let command: [String]
    /// Extra environment variables for every rank.
    public let environment: [String: String]
    /// The job is ended (SIGTERM, then SIGKILL) after this many seconds.
    public let timeLimit: Double
    /// The job is ended if some host still runs no rank this many seconds after `mpirun` started.
    /// A launch takes seconds; a launch whose remote daemon died before starting its rank would
    /// otherwise wait for `timeLimit` (an hour by default) with nothing running.
    public let launchTimeout: Double

    public init(cluster: EmulatedCluster, command: [String], environment: [String: String] = [:],
                timeLimit: Double, launchTimeout: Double = ClusterJob.defaultLaunchTimeout) {
        self.cluster = cluster
        self.command = command
        self.environment = environment
        self.timeLimit = timeLimit
        self.launchTimeout = launchTimeout
    }

    /// Generous against the 1–3 s a launch takes here under load (docs/cluster.md).
    public static let defaultLaunchTimeout = 60.0

    /// How the job ended.
    public struct Outcome {
        /// The job's exit status: `mpirun`'s, or 128 + the signal that ended it.
        public var status: Int32
        public var wallSeconds: Double
        public var counters: [EmulatedCluster.LinkCounters]
        public var ledgers: [LedgerFile?]
        /// Set when SIGINT or SIGTERM reached this command during the job (its number).
        public var interruptedBy: Int32?
        public var timedOut: Bool
        /// The hosts that had no running rank `launchTimeout` seconds after the start, if the job
        /// was ended for that (empty otherwise).
        public var hostsNotLaunched: [Int]
    }

    /// Largest message MPI sends without a rendezvous handshake.
    public static let eagerLimitBytes = 8 << 20

    /// The `mpirun` flags of a cluster job (without the hostfile, agent and program).
    public static func mpiFlags(ranks: Int) -> [String] {
        var flags = ["-np", "\(ranks)", "--bind-to", "none", "--map-by", "slot",
                     "--mca", "plm_rsh_no_tree_spawn", "1",
                     "--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
                     "--mca", "btl_tcp_if_include", EmulatedCluster.subnet,
                     "--mca", "oob_tcp_if_include", EmulatedCluster.subnet,
                     // Messages up to 8 MB go eagerly. Above the default 64 KB, ob1's rendezvous makes
                     // the sender wait for the receiver's ready-to-send, which travels on the same
                     // TCP connection behind the receiver's own bulk data: every exchange in both
                     // directions (each ring step) then takes twice its time (docs/cluster.md).
                     "--mca", "btl_tcp_eager_limit", "\(ClusterJob.eagerLimitBytes)",
                     // The ring algorithms, which the ledger's byte formulas and the network model describe.
                     "--mca", "coll_tuned_use_dynamic_rules", "1",
                     "--mca", "coll_tuned_allreduce_algorithm", "4",
                     "--mca", "coll_tuned_allgather_algorithm", "4",
                     "--mca", "coll_tuned_allgatherv_algorithm", "3"]
        // More ranks than cores: a rank waiting in a collective gives its core to the one it waits for.
        if ranks > cores { flags += ["--mca", "mpi_yield_when_idle", "1"] }
        if geteuid() == 0 { flags.insert("--allow-run-as-root", at: 0) }
        return flags
    }

    /// Cores this process may run on (the emulated hosts share them).
    public static var cores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// `command` prefixed so that rank r runs on core r mod `cores` (`taskset`, when present).
    /// Unpinned, two busy-polling ranks often share one core while the other runs something
    /// else: each small message then waits for a scheduler time slice (measured 10–14 ms per
    /// 4-byte all-reduce at 2 ranks instead of 15 µs; docs/cluster.md). A real host has its own cores.
    public static func pinned(_ command: [String]) -> [String] {
        guard let taskset = Subprocess.find("taskset"), !command.isEmpty else { return command }
        return ["/bin/sh", "-c", "exec \(taskset) -c $((OMPI_COMM_WORLD_RANK % \(cores))) \"$0\" \"$@\""] + command
    }

    /// Runs the job to its end, the time limit, or a SIGINT/SIGTERM to this process (forwarded
    /// to `mpirun`). The cluster is not torn down here: the caller owns it.
    public func run() throws -> Outcome {
        guard let mpirun = Subprocess.find("mpirun") else {
            throw ClusterError.unavailable("powersgd cluster needs OpenMPI's mpirun, which is not on PATH",
                                           advice: "install openmpi-bin (scripts/bootstrap.sh installs it)")
        }
        guard let ip = Subprocess.find("ip") else {
            throw ClusterError.unavailable("powersgd cluster needs iproute2's 'ip'", advice: "install iproute2")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(cluster.prefix)job")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledgers = directory.appendingPathComponent("ledgers")
        try FileManager.default.createDirectory(at: ledgers, withIntermediateDirectories: true)

        let hostfile = directory.appendingPathComponent("hostfile")
        try (0 ..< cluster.hosts).map { "\(cluster.address($0)) slots=1\n" }.joined()
            .write(to: hostfile, atomically: true, encoding: .utf8)
        let agent = directory.appendingPathComponent("netns-agent")
        try agentScript(ip: ip).write(to: agent, atomically: true, encoding: .utf8)
        chmod(agent.path, 0o755)

        var environmentFlags: [String] = []
        var variables = environment
        variables[LedgerFile.environmentVariable] = ledgers.path
        if variables["OPENBLAS_NUM_THREADS"] == nil {
            // One BLAS thread per rank: the ranks share this machine's cores.
            variables["OPENBLAS_NUM_THREADS"] = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "1"
        }
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) { environmentFlags += ["-x", "\(key)=\(value)"] }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", cluster.hostNamespace(0), mpirun]
            + ClusterJob.mpiFlags(ranks: cluster.hosts)
            + ["--hostfile", hostfile.path, "--mca", "plm_rsh_agent", agent.path] + environmentFlags + ClusterJob.pinned(command)
        process.standardInput = FileHandle.nullDevice

        // SIGINT and SIGTERM are handled here (forwarded to mpirun) so that the caller's teardown runs.
        let signals: [Int32] = [SIGINT, SIGTERM]
        let queue = DispatchQueue(label: "powersgd.cluster.signals")
        var received: Int32?
        let lock = NSLock()
        let sources = signals.map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                lock.lock(); if received == nil { received = number }; lock.unlock()
            }
            source.resume()
            return source
        }
        defer {
            for source in sources { source.cancel() }
            for number in signals { signal(number, SIG_DFL) }
        }

        // A host has launched once a process in its namespace runs the rank's program (the
        // launcher's shell and `taskset` exec into it); the daemon alone does not count.
        let program = URL(fileURLWithPath: command.first ?? "").resolvingSymlinksInPath().path
        var waitingForLaunch = Set(0 ..< cluster.hosts), hostsNotLaunched: [Int] = []
        var nextLaunchCheck = Date()

        let before = try cluster.counters()
        let start = Date()
        try process.run()
        var timedOut = false, forwarded: Date?
        while process.isRunning {
            usleep(20_000)
            lock.lock(); let signalled = received; lock.unlock()
            var launchHung = false
            if forwarded == nil && !waitingForLaunch.isEmpty && Date() >= nextLaunchCheck {
                waitingForLaunch = waitingForLaunch.filter { !cluster.host($0, runs: program) }
                nextLaunchCheck = Date().addingTimeInterval(0.25)
                launchHung = !waitingForLaunch.isEmpty && Date().timeIntervalSince(start) > launchTimeout
                if launchHung { hostsNotLaunched = waitingForLaunch.sorted() }
            }
            if forwarded == nil && (signalled != nil || launchHung || Date().timeIntervalSince(start) > timeLimit) {
                timedOut = signalled == nil && !launchHung
                kill(process.processIdentifier, SIGTERM)
                forwarded = Date()
            }
            if let forwarded, Date().timeIntervalSince(forwarded) > 5 {
                kill(process.processIdentifier, SIGKILL)
            }
        }
        process.waitUntilExit()
        let wall = Date().timeIntervalSince(start)
        let after = try cluster.counters()
        let status: Int32 = process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
        lock.lock(); let interruptedBy = received; lock.unlock()
        return Outcome(status: status, wallSeconds: wall, counters: zip(after, before).map { $0 - $1 },
                       ledgers: LedgerFile.read(directory: ledgers, ranks: cluster.hosts),
                       interruptedBy: interruptedBy, timedOut: timedOut, hostsNotLaunched: hostsNotLaunched)
    }

    /// The `plm_rsh_agent` script: called as `agent <host address> <command line>`, it runs the
    /// command line in that host's namespace.
    func agentScript(ip: String) -> String {
        var cases = ""
        for host in 0 ..< cluster.hosts {
            cases += "    \(cluster.address(host))) namespace=\(cluster.hostNamespace(host)) ;;\n"
        }
        return """
        #!/bin/sh
        # Generated by powersgd cluster: mpirun's remote-shell agent for the emulated hosts.
        host=$1; shift
        case "$host" in
        \(cases)    *) echo "powersgd cluster agent: unknown host '$host'" >&2; exit 1 ;;
        esac
        exec \(ip) netns exec "$namespace" /bin/sh -c "$*"

        """
    }

    /// The report of a finished job.
    public func report(_ outcome: Outcome, projectedNetwork: String) -> ClusterReport {
        let hosts = (0 ..< cluster.hosts).map { host -> ClusterReport.Host in
            let kernel = outcome.counters[host], ledger = outcome.ledgers[host]
            func ratio(_ k: Int, _ l: Int?) -> Double? { l.flatMap { $0 > 0 ? Double(k) / Double($0) : nil } }
            let seconds = max(outcome.wallSeconds, 1e-9)
            return ClusterReport.Host(host: host, namespace: cluster.hostNamespace(host), address: cluster.address(host),
                                      kernelBytesSent: kernel.bytesSent, kernelBytesReceived: kernel.bytesReceived,
                                      kernelPacketsSent: kernel.packetsSent, kernelPacketsReceived: kernel.packetsReceived,
                                      ledgerBytesSent: ledger?.bytesSent, ledgerBytesReceived: ledger?.bytesReceived,
                                      sentRatio: ratio(kernel.bytesSent, ledger?.bytesSent),
                                      receivedRatio: ratio(kernel.bytesReceived, ledger?.bytesReceived),
                                      achievedSendBitsPerSecond: Double(kernel.bytesSent) * 8 / seconds,
                                      achievedReceiveBitsPerSecond: Double(kernel.bytesReceived) * 8 / seconds,
                                      collectiveSeconds: ledger?.seconds,
                                      collectiveSendBitsPerSecond: ledger.flatMap { $0.seconds > 0 ? Double(kernel.bytesSent) * 8 / $0.seconds : nil },
                                      collectiveReceiveBitsPerSecond: ledger.flatMap { $0.seconds > 0 ? Double(kernel.bytesReceived) * 8 / $0.seconds : nil })
        }
        return ClusterReport(hosts: cluster.hosts, linkBitsPerSecond: cluster.rate.bitsPerSecond,
                             delaySeconds: cluster.delaySeconds, projectedNetwork: projectedNetwork, command: command,
                             exitStatus: outcome.status, wallSeconds: outcome.wallSeconds, perHost: hosts)
    }
}
