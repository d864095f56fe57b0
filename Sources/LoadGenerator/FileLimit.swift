import Foundation

/// The open-file limit (`ulimit -n`): N workers hold N × P connections, each a socket and a libzmq mailbox.
public enum FileLimit {
    /// Raises the soft limit to at least `needed`, up to the hard limit.
    /// - Throws: `LoadError.fileLimit` when the hard limit is below `needed`.
    public static func raise(toAtLeast needed: Int) throws {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur >= rlim_t(needed) { return }
        guard limit.rlim_max == rlim_t.max || limit.rlim_max >= rlim_t(needed) else {
            throw LoadError.fileLimit(needed: needed, hardLimit: Int(limit.rlim_max))
        }
        limit.rlim_cur = rlim_t(needed)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// The soft limit now.
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return limit.rlim_cur == rlim_t.max ? Int.max : Int(limit.rlim_cur)
    }
}
