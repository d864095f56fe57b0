import Foundation

/// What Linux's /proc says about a process: CPU time and memory. The server is measured from outside, as
/// `top` would, so that nothing in it changes for the measurement.
public enum ProcStat {
    /// A process's CPU seconds in user and kernel mode, and its minor page faults (a fault that maps a page
    /// without reading a file: every first touch of freshly allocated memory).
    public struct Times: Sendable, Equatable {
        public var user: Double
        public var system: Double
        public var minorFaults: Double
        public var total: Double { user + system }
    }

    /// User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat, in clock ticks), or nil
    /// when it is gone.
    public static func cpuSeconds(pid: Int32) -> Double? { times(pid: pid)?.total }

    /// The CPU times and minor faults of a process, or nil when it is gone.
    public static func times(pid: Int32) -> Times? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return times(statLine: text)
    }

    /// User + system CPU seconds from a /proc/PID/stat line.
    public static func cpuSeconds(statLine: String) -> Double? { times(statLine: statLine)?.total }

    /// Parses a /proc/PID/stat line. The command name (field 2) is in parentheses and may itself hold spaces
    /// and parentheses, so fields are counted from the last `)`.
    public static func times(statLine: String) -> Times? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After the name: state is field 3, so minflt (10), utime (14) and stime (15) are at offsets 7, 11, 12.
        guard fields.count > 12, let faults = Double(fields[7]), let user = Double(fields[11]),
            let system = Double(fields[12])
        else { return nil }
        return Times(user: user / ticksPerSecond, system: system / ticksPerSecond, minorFaults: faults)
    }

    static let ticksPerSecond: Double = {
        let t = sysconf(Int32(_SC_CLK_TCK))
        return t > 0 ? Double(t) : 100
    }()

    /// Resident and peak resident memory of a process, in bytes (VmRSS and VmHWM of /proc/PID/status).
    public static func memory(pid: Int32) -> (rss: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return memory(statusText: text)
    }

    /// Parses /proc/PID/status for VmRSS and VmHWM (kB).
    public static func memory(statusText: String) -> (rss: Int, peak: Int)? {
        var rss: Int?
        var peak: Int?
        for line in statusText.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let kb = Int(parts[1]) else { continue }
            if parts[0] == "VmRSS:" { rss = kb * 1024 }
            if parts[0] == "VmHWM:" { peak = kb * 1024 }
        }
        guard let rss, let peak else { return nil }
        return (rss, peak)
    }

    /// The machine's busy and total CPU seconds so far (first line of /proc/stat; busy is everything but
    /// idle and iowait), summed over cores: what else the machine did during a run shows in it.
    public static func machine() -> (busy: Double, total: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return machine(statText: text)
    }

    /// Parses the first line of /proc/stat (`cpu user nice system idle iowait irq softirq steal ...`).
    public static func machine(statText: String) -> (busy: Double, total: Double)? {
        guard let line = statText.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard values.count >= 4 else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already inside user).
        let total = values.prefix(8).reduce(0, +)
        let idle = values[3] + (values.count > 4 ? values[4] : 0)
        return ((total - idle) / ticksPerSecond, total / ticksPerSecond)
    }

    /// Cores online.
    public static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
