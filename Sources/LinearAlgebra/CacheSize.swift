import Foundation

/// The size of the CPU's last-level cache, for kernels that choose between ordinary stores and
/// stores that bypass the caches: data written now and read again only after more than this
/// has passed through the caches is gone from them either way.
public enum CacheSize {
    /// Bytes of the last-level cache of CPU 0 (the highest `index*` level in sysfs), or 32 MiB
    /// where sysfs does not say. Read once. (`sysconf(_SC_LEVEL3_CACHE_SIZE)` is not used: in
    /// virtual machines it reports the host's sum over all cache instances, ten times too much here.)
    public static let lastLevelBytes: Int = {
        let directory = "/sys/devices/system/cpu/cpu0/cache"
        let indices = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasPrefix("index") } ?? []
        var best: (level: Int, bytes: Int)?
        for index in indices {
            guard let level = read("\(directory)/\(index)/level").flatMap(Int.init),
                  let bytes = read("\(directory)/\(index)/size").flatMap(parseSize) else { continue }
            if best.map({ level > $0.level }) ?? true { best = (level, bytes) }
        }
        return best?.bytes ?? 32 << 20
    }()

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// "32768K" → 33554432; also plain bytes and "M".
    static func parseSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.last, let unit = units[last] { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }
}
