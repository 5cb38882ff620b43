import Foundation

/// N emulated hosts on this machine: one network namespace per host, each with a veth link
/// into a bridge (the switch) that lives in a namespace of its own, every link shaped by the
/// kernel's token-bucket filter to the same rate in each direction.
///
/// ```
///  <prefix>-h0: eth0 10.213.0.1/24 ─veth─ h0 ┐
///  <prefix>-h1: eth0 10.213.0.2/24 ─veth─ h1 ├ br0   (<prefix>-sw)
///  ...                                        ┘
/// ```
/// Upload is shaped on the host's `eth0` (its egress), download on the switch's end `h<i>`.
/// Nothing is created in the machine's own namespace: each veth is created inside a host
/// namespace with its peer placed straight into the switch's. Names start with
/// `psgdcl-<pid>-`, so concurrent invocations never collide and `cleanup()` finds leftovers.
///
/// `teardown()` ends every process still inside the namespaces (they can only be this run's)
/// and deletes the namespaces, which deletes their interfaces; it is safe to call twice.
public final class EmulatedCluster {
    /// The name prefix of everything an emulated cluster creates.
    public static let namePrefix = "psgdcl-"
    /// Ethernet MTU on the links: `tbf` drops any packet larger than its bucket, and a bucket of
    /// several 1500-byte frames is what a NIC's shaper would hold.
    public static let mtu = 1500
    /// Bytes of one full frame as the kernel counts it (MTU + 14-byte Ethernet header).
    public static let frameBytes = 1514
    /// TCP payload of a full frame (MTU − 20 IPv4 − 32 TCP with timestamps).
    public static let segmentBytes = 1448
    /// The emulated hosts' subnet: it exists only inside the namespaces.
    public static let subnet = "10.213.0.0/24"

    public let hosts: Int
    public let rate: LinkRate
    /// One-way delay added on each direction of each link (netem), if any.
    public let delaySeconds: Double?
    /// `psgdcl-<pid>-`.
    public let prefix: String
    public private(set) var created: [String] = []
    private let ip: String
    private let tc: String
    private var tornDown = false

    public var switchNamespace: String { prefix + "sw" }
    public func hostNamespace(_ host: Int) -> String { prefix + "h\(host)" }
    public func address(_ host: Int) -> String { "10.213.0.\(host + 1)" }
    /// Name of a host's link on the switch's side.
    func switchPort(_ host: Int) -> String { "h\(host)" }

    /// Checks the machine can host the cluster (root, `ip`, `tc`) before anything is created.
    public static func requirements() throws -> (ip: String, tc: String) {
        guard geteuid() == 0 else {
            throw ClusterError.unavailable("powersgd cluster needs root (CAP_NET_ADMIN) to create network namespaces, "
                                           + "veth links and traffic shapers, and this process runs as uid \(geteuid())",
                                           advice: "run it as root (e.g. 'sudo powersgd cluster ...'), or in a container started with --cap-add NET_ADMIN")
        }
        guard let ip = Subprocess.find("ip"), let tc = Subprocess.find("tc") else {
            throw ClusterError.unavailable("powersgd cluster needs the iproute2 tools 'ip' and 'tc', which are not on PATH",
                                           advice: "install iproute2 (scripts/bootstrap.sh installs it)")
        }
        return (ip, tc)
    }

    /// Creates the namespaces, links and shapers. On any failure, what was created is removed again.
    public init(hosts: Int, rate: LinkRate, delaySeconds: Double? = nil,
                prefix: String = EmulatedCluster.namePrefix + "\(getpid())-") throws {
        guard (1...EmulatedCluster.maximumHosts).contains(hosts) else {
            throw ClusterError.invalid("--hosts must be between 1 and \(EmulatedCluster.maximumHosts) (got \(hosts))")
        }
        let tools = try EmulatedCluster.requirements()
        self.hosts = hosts
        self.rate = rate
        self.delaySeconds = delaySeconds
        self.prefix = prefix
        self.ip = tools.ip
        self.tc = tools.tc
        do { try build() } catch {
            teardown()
            throw error
        }
    }

    /// At most this many hosts: the subnet, and two cores that must run one rank per host.
    public static let maximumHosts = 16

    private func build() throws {
        try addNamespace(switchNamespace)
        try Subprocess.check(ip, ["-n", switchNamespace, "link", "set", "lo", "up"])
        try Subprocess.check(ip, ["-n", switchNamespace, "link", "add", "br0", "type", "bridge"])
        try Subprocess.check(ip, ["-n", switchNamespace, "link", "set", "br0", "up"])
        for host in 0 ..< hosts {
            let namespace = hostNamespace(host), port = switchPort(host)
            try addNamespace(namespace)
            // No IPv6: its neighbour discovery would put packets on the links that no job sent.
            try Subprocess.check(ip, ["netns", "exec", namespace, "sysctl", "-q", "-w",
                                      "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            try Subprocess.check(ip, ["-n", namespace, "link", "set", "lo", "up"])
            // Created inside the host's namespace, the peer placed straight into the switch's.
            try Subprocess.check(ip, ["-n", namespace, "link", "add", "eth0", "mtu", "\(EmulatedCluster.mtu)",
                                      "type", "veth", "peer", "name", port, "mtu", "\(EmulatedCluster.mtu)",
                                      "netns", switchNamespace])
            try Subprocess.check(ip, ["-n", switchNamespace, "link", "set", port, "master", "br0", "up"])
            try Subprocess.check(ip, ["-n", namespace, "addr", "add", address(host) + "/24", "dev", "eth0"])
            try Subprocess.check(ip, ["-n", namespace, "link", "set", "eth0", "up"])
            try shape(namespace: namespace, device: "eth0")
            try shape(namespace: switchNamespace, device: port)
        }
    }

    private func addNamespace(_ name: String) throws {
        try Subprocess.check(ip, ["netns", "add", name])
        created.append(name)
    }

    /// Bucket of the shaper: ten full frames, or 1 ms at the rate when that is more (at 1 Gbit/s
    /// ten frames last 0.12 ms, shorter than the kernel's timer can refill them reliably).
    var burstBytes: Int { max(10 * EmulatedCluster.frameBytes, Int(rate.bitsPerSecond / 8 / 1000)) }

    /// Egress token bucket on `device`, and netem's delay beneath it when one is asked for.
    /// A veth hands `tbf` GSO packets of up to 64 KiB; `tbf` segments any larger than its
    /// bucket into MTU-sized ones before queueing (Linux's tbf_segment), so none is dropped.
    private func shape(namespace: String, device: String) throws {
        try Subprocess.check(tc, ["-n", namespace, "qdisc", "add", "dev", device, "root", "handle", "1:", "tbf",
                                  "rate", rate.tcRate, "burst", "\(burstBytes)", "latency", "20ms"])
        guard let delaySeconds, delaySeconds > 0 else { return }
        let microseconds = Int((delaySeconds * 1e6).rounded())
        let result = try Subprocess.run(tc, ["-n", namespace, "qdisc", "add", "dev", device, "parent", "1:1",
                                             "handle", "10:", "netem", "delay", "\(microseconds)us"])
        guard result.status == 0 else {
            let message = result.error.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ClusterError.unavailable("--delay cannot be honoured: this kernel refused the netem qdisc that adds delay "
                                           + "('\(message)'; netem is the sch_netem module)",
                                           advice: "run without --delay, or on a kernel with sch_netem (modprobe sch_netem); "
                                           + "the link's latency is then what bench network measures")
        }
    }

    // MARK: - Counters

    /// Bytes and packets one host's link carried, as the kernel counted them on its `eth0`
    /// (`/sys/class/net/eth0/statistics`): sent = the host's upload, received = its download.
    public struct LinkCounters: Sendable, Codable, Equatable {
        public var bytesSent: Int
        public var bytesReceived: Int
        public var packetsSent: Int
        public var packetsReceived: Int

        public static func - (a: LinkCounters, b: LinkCounters) -> LinkCounters {
            LinkCounters(bytesSent: a.bytesSent - b.bytesSent, bytesReceived: a.bytesReceived - b.bytesReceived,
                         packetsSent: a.packetsSent - b.packetsSent, packetsReceived: a.packetsReceived - b.packetsReceived)
        }
    }

    public func counters(host: Int) throws -> LinkCounters {
        let names = ["tx_bytes", "rx_bytes", "tx_packets", "rx_packets"]
        // `ip netns exec` mounts the namespace's own /sys, so these are eth0 of this host.
        let output = try Subprocess.check(ip, ["netns", "exec", hostNamespace(host), "cat"]
                                          + names.map { "/sys/class/net/eth0/statistics/\($0)" })
        let values = output.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == names.count else {
            throw ClusterError.command("read the link counters of \(hostNamespace(host))", "unexpected output '\(output)'")
        }
        return LinkCounters(bytesSent: values[0], bytesReceived: values[1], packetsSent: values[2], packetsReceived: values[3])
    }

    public func counters() throws -> [LinkCounters] { try (0 ..< hosts).map { try counters(host: $0) } }

    // MARK: - Teardown

    /// Ends every process left in this cluster's namespaces and deletes the namespaces (and so
    /// their links, bridge and shapers). Never throws: it is called on the way out of failures.
    public func teardown() {
        guard !tornDown else { return }
        tornDown = true
        EmulatedCluster.remove(namespaces: created.reversed(), ip: ip)
        created.removeAll()
    }

    deinit { teardown() }

    /// Whether a process in `host`'s namespace runs the executable at `path` (a resolved path).
    public func host(_ host: Int, runs path: String) -> Bool {
        EmulatedCluster.processes(in: hostNamespace(host), ip: ip).contains { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) == path
        }
    }

    /// PIDs of the processes inside `namespace`.
    static func processes(in namespace: String, ip: String) -> [pid_t] {
        guard let result = try? Subprocess.run(ip, ["netns", "pids", namespace]), result.status == 0 else { return [] }
        return result.output.split(whereSeparator: \.isNewline).compactMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// SIGTERM to the processes of `namespaces`, SIGKILL to those still there after 2 s, then
    /// the namespaces are deleted. A namespace with a process left would outlive its name.
    static func remove(namespaces: [String], ip: String) {
        var remaining = namespaces.flatMap { processes(in: $0, ip: ip) }
        for pid in remaining { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(2)
        while !remaining.isEmpty && Date() < deadline {
            usleep(50_000)
            remaining = namespaces.flatMap { processes(in: $0, ip: ip) }
        }
        for pid in remaining { kill(pid, SIGKILL) }
        for namespace in namespaces {
            _ = try? Subprocess.run(ip, ["netns", "del", namespace])
        }
    }

    /// Namespaces a previous invocation left behind: names with our prefix whose invocation
    /// (the PID in the name) is no longer running.
    public static func leftovers() throws -> [String] {
        let (ip, _) = try requirements()
        let output = try Subprocess.check(ip, ["netns", "list"])
        return output.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            // `ip netns list` prints "name" or "name (id: N)".
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(namePrefix) else { return nil }
            let pid = name.dropFirst(namePrefix.count).prefix { $0.isNumber }
            if let owner = pid_t(pid), owner != getpid(), kill(owner, 0) == 0 || errno == EPERM,
               isClusterCommand(owner) {
                return nil  // a live invocation's
            }
            return name
        }
    }

    /// Whether `pid` is a running `powersgd` (a PID reused by another program does not protect a leftover).
    private static func isClusterCommand(_ pid: pid_t) -> Bool {
        guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return false }
        return comm.trimmingCharacters(in: .whitespacesAndNewlines) == "powersgd"
    }

    /// Removes the namespaces (with their processes and interfaces) that killed invocations
    /// left; returns their names.
    @discardableResult
    public static func cleanup() throws -> [String] {
        let (ip, _) = try requirements()
        let names = try leftovers()
        // Host namespaces first, the switch last, as teardown does.
        remove(namespaces: names.sorted { !$0.hasSuffix("-sw") && $1.hasSuffix("-sw") }, ip: ip)
        return names
    }
}
