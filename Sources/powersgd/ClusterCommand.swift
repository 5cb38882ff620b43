import ArgumentParser
import Collectives
import EmulatedCluster
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `powersgd cluster`: runs `train`, `compare` or `bench network` as an MPI job on emulated
/// hosts (network namespaces with shaped links), then reports the bytes the kernel counted on
/// each link against the job's ledger. See docs/cluster.md.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster",
        abstract: "Run train, compare or bench network on emulated hosts: one network namespace and one shaped link per host, MPI over TCP.",
        discussion: """
        Example: powersgd cluster --hosts 2 --link 20mbit --json out.json -- train --model resnet8 --steps 12 --reducer sgd. \
        Each host gets its own namespace and a full-duplex link into a switch, shaped to --link in each direction; \
        the subcommand runs under mpirun with one rank per host and '--backend mpi --network <the link> \
        --project-workers <hosts>' added, so measured and projected times sit side by side. Needs root (CAP_NET_ADMIN), \
        iproute2 and OpenMPI (scripts/bootstrap.sh). Everything is removed afterwards, also on failure, Ctrl-C and \
        SIGTERM; 'powersgd cluster --cleanup' removes what a killed run left. Exit status: the job's.
        """)

    @Option(help: "Number of emulated hosts (one MPI rank each).")
    var hosts: Int?

    @Option(help: "Rate of each host's link, in each direction: e.g. 20mbit, 100mbit, 1gbit.")
    var link: String?

    @Option(help: "One-way delay added to each direction of each link (e.g. 2ms, 500us); needs the kernel's netem.")
    var delay: String?

    @Option(help: "Network file for the projections (from 'bench network --output'); default: the link's rate and latency.")
    var network: String?

    @Option(help: "Write the per-host report (kernel and ledger bytes, ratio, rate, throughput) as JSON to this file.")
    var json: String?

    @Option(help: "End the job after this many seconds.")
    var timeLimit: Double = 3600

    @Option(help: "End the job if some host has not started its rank this many seconds after the launch began.")
    var launchTimeout: Double = ClusterJob.defaultLaunchTimeout

    @Flag(help: "Remove the namespaces (with their links and processes) that killed 'powersgd cluster' runs left, and exit.")
    var cleanup = false

    @Argument(parsing: .captureForPassthrough, help: "'--' then the subcommand and its flags: train ..., compare ..., bench network ...")
    var command: [String] = []

    /// The subcommands that run as a cluster job.
    static let jobs: [[String]] = [["train"], ["compare"], ["bench", "network"]]

    /// The latency the projection assumes for an emulated link: what one small MPI message
    /// takes between two namespaces here (bench network measures it: docs/cluster.md).
    static let emulatedLatency = "50us"

    func validate() throws {
        // The passthrough argument captures everything after the options, `--help` included.
        if let first = command.first, ["--help", "-h", "help"].contains(first) { throw CleanExit.helpRequest(self) }
        if cleanup {
            guard hosts == nil, link == nil, command.isEmpty else {
                throw ValidationError("--cleanup takes no other options and no subcommand")
            }
            return
        }
        guard let hosts else { throw ValidationError("--hosts is required (the number of emulated hosts)") }
        guard (1...EmulatedCluster.maximumHosts).contains(hosts) else {
            throw ValidationError("--hosts must be between 1 and \(EmulatedCluster.maximumHosts) (got \(hosts))")
        }
        guard let link else { throw ValidationError("--link is required (the rate of each link, e.g. 20mbit)") }
        do { _ = try LinkRate(parsing: link) } catch { throw ValidationError("\(error)") }
        _ = try parsedDelay()
        guard timeLimit > 0, timeLimit.isFinite else { throw ValidationError("--time-limit must be positive (got \(timeLimit))") }
        guard launchTimeout > 0, launchTimeout.isFinite else {
            throw ValidationError("--launch-timeout must be positive (got \(launchTimeout))")
        }
        if let network {
            do { _ = try NetworkModel(parsing: network) } catch { throw ValidationError("--network: \(error)") }
        }
        _ = try subcommand()
    }

    func parsedDelay() throws -> Double? {
        guard let delay else { return nil }
        let spec = delay.lowercased()
        for (suffix, scale) in [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)] where spec.hasSuffix(suffix) {
            if let value = Double(spec.dropLast(suffix.count)), value.isFinite, value >= 0, value * scale <= 1 {
                return value * scale
            }
            break
        }
        throw ValidationError("--delay '\(delay)': expected a time between 0 and 1 s such as 2ms or 500us")
    }

    /// The subcommand after `--`, checked: one of `jobs`, and no flag that the cluster sets itself.
    func subcommand() throws -> [String] {
        guard let first = command.first else {
            throw ValidationError("missing '--' and the subcommand to run, e.g. 'powersgd cluster --hosts 2 --link 20mbit -- train --model mlp'")
        }
        guard first == "--" else {
            throw ValidationError("missing '--' before the subcommand (got '\(first)'): write 'powersgd cluster --hosts N --link RATE -- \(command.joined(separator: " "))'")
        }
        let rest = Array(command.dropFirst())
        guard let job = ClusterCommand.jobs.first(where: { rest.starts(with: $0) }) else {
            throw ValidationError("the subcommand must be train, compare or bench network (got '\(rest.prefix(2).joined(separator: " "))')")
        }
        for (index, argument) in rest.enumerated() {
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if name == "--network" {
                throw ValidationError("--network belongs before '--': the cluster sets the job's projection network (use 'powersgd cluster --network FILE')")
            }
            if name == "--backend" {
                let value = argument.contains("=") ? String(argument.split(separator: "=", maxSplits: 1)[1])
                    : (index + 1 < rest.count ? rest[index + 1] : "")
                guard value == "mpi" else {
                    throw ValidationError("--backend \(value): a cluster job runs one MPI rank per host (--backend mpi, which the cluster sets)")
                }
            }
        }
        _ = job
        return rest
    }

    /// The network the job projects for: the given file, or the link's TCP payload rate and latency.
    func projectionNetwork(rate: LinkRate) -> String {
        if let network { return network.hasSuffix(".json") ? URL(fileURLWithPath: network).path : network }
        return String(format: "%.4gmbit", rate.payloadBytesPerSecond * 8 / 1e6) + ",\(ClusterCommand.emulatedLatency)"
    }

    func run() throws {
        if cleanup {
            let removed: [String]
            do { removed = try EmulatedCluster.cleanup() } catch let error as ClusterError {
                throw ValidationError("\(error)")
            }
            print(removed.isEmpty ? "powersgd cluster: nothing to clean up"
                  : "powersgd cluster: removed \(removed.joined(separator: ", "))")
            return
        }
        let rate = try LinkRate(parsing: link!)
        let hosts = hosts!
        var arguments = try subcommand()
        let projected = projectionNetwork(rate: rate)
        if arguments.first != "bench" {
            arguments += ["--backend", "mpi", "--network", projected]
            if !arguments.contains(where: { $0 == "--project-workers" || $0.hasPrefix("--project-workers=") }) {
                arguments += ["--project-workers", "\(hosts)"]
            }
        }
        // Relative paths in the subcommand stay relative to this directory: ranks start in it too.
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

        let cluster: EmulatedCluster
        do { cluster = try EmulatedCluster(hosts: hosts, rate: rate, delaySeconds: try parsedDelay()) } catch let error as ClusterError {
            if case .invalid = error { throw ValidationError("\(error)") }
            if case .unavailable = error { throw ValidationError("\(error)") }
            throw RuntimeError("\(error)")
        }
        let outcome: ClusterJob.Outcome, report: ClusterReport
        do {
            let job = ClusterJob(cluster: cluster, command: [me] + arguments, timeLimit: timeLimit,
                                 launchTimeout: launchTimeout)
            FileHandleStandardError.write("powersgd cluster: \(hosts) hosts (\(cluster.prefix)*), \(rate) links; "
                                          + "running \(arguments.joined(separator: " "))\n")
            outcome = try job.run()
            report = job.report(outcome, projectedNetwork: projected)
        } catch {
            cluster.teardown()
            throw RuntimeError("\(error)")
        }
        cluster.teardown()
        print(report.text)
        if let signal = outcome.interruptedBy {
            FileHandleStandardError.write("powersgd cluster: interrupted by signal \(signal); the job was ended and the cluster removed\n")
        }
        if !outcome.hostsNotLaunched.isEmpty {
            FileHandleStandardError.write("powersgd cluster: host(s) \(outcome.hostsNotLaunched.map(String.init).joined(separator: ", ")) "
                                          + "had not started a rank \(launchTimeout) s after the launch began (mpirun's remote "
                                          + "daemon failed or hangs); the job was ended. On a slow machine, raise --launch-timeout\n")
        }
        if outcome.timedOut {
            FileHandleStandardError.write("powersgd cluster: the job ran longer than --time-limit \(timeLimit) s and was ended\n")
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do { try encoder.encode(report).write(to: URL(fileURLWithPath: json)) } catch {
                throw RuntimeError("--json \(json): cannot write the report (\(error.localizedDescription))")
            }
        }
        if outcome.status != 0 { Glibc.exit(outcome.status) }
    }
}
