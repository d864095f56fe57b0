import Foundation

/// The open-file limit (`ulimit -n`). Every connection is a socket (and, in libzmq, a mailbox): a server
/// holds two per worker, a load generator N × P. At the limit libzmq's listener cannot accept and spins on
/// the listening socket until a connection closes, so the limit is raised where the system allows and
/// watched where it does not.
public enum FileLimit {
    /// The soft and hard limits now (`Int.max` for unlimited).
    public static var limits: (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        let f = { (v: rlim_t) in v == rlim_t.max || v > rlim_t(Int.max) ? Int.max : Int(v) }
        return (f(limit.rlim_cur), f(limit.rlim_max))
    }

    /// The soft limit now.
    public static var current: Int { limits.soft }

    /// Raises the soft limit to `needed`, or as far as the hard limit allows.
    /// - Returns: the soft limit afterwards.
    @discardableResult
    public static func raise(toAtLeast needed: Int) -> Int {
        var limit = rlimit()
        guard needed > 0, getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current }
        if limit.rlim_cur != rlim_t.max && limit.rlim_cur < rlim_t(needed) {
            limit.rlim_cur = limit.rlim_max == rlim_t.max ? rlim_t(needed) : min(rlim_t(needed), limit.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return current
    }

    /// This process's open descriptors (the entries of `/proc/self/fd`); nil where that cannot be read.
    public static func openCount() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let first = withUnsafeBytes(of: e.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { n += 1 }
        }
        return max(0, n - 1)  // the directory's own descriptor
    }
}
