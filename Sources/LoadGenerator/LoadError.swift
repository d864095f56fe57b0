import Foundation

/// Why a load run could not be made or finished; each case names the thing and what to do about it.
public enum LoadError: Error, CustomStringConvertible, Equatable {
    /// A model size that cannot be built.
    case badModel(String)
    /// The `ps-server` executable is not where it was looked for.
    case serverMissing(path: String)
    /// A server process exited (or never listened) before the run could use it.
    case serverDidNotStart(index: Int, seconds: Double, output: String)
    /// A `--ps` endpoint that is not host:port on loopback.
    case notLoopback(String)
    /// The open-file limit cannot be raised to what N workers and P servers need.
    case fileLimit(needed: Int, hardLimit: Int)
    /// A simulated worker failed; the first failure is reported with its index.
    case workerFailed(index: Int, message: String)
    /// Workers did not all join (hello, register, first pull) in time.
    case joinTimedOut(joined: Int, of: Int, seconds: Double)
    /// The run was stopped by a signal before its measurement window closed.
    case interrupted
    /// A results file could not be read or written.
    case file(path: String, problem: String)

    public var description: String {
        switch self {
        case .badModel(let why): return "cannot build the load model: \(why)"
        case .serverMissing(let path):
            return
                "no ps-server executable at \(path): build it (swift build -c release --product ps-server) or pass --server-binary"
        case .serverDidNotStart(let i, let secs, let output):
            return String(format: "ps-server %d did not listen within %.0f s; its output:\n%@", i, secs, output)
        case .notLoopback(let e):
            return "--ps \(e): ps-load drives servers on loopback only (127.0.0.1:PORT or localhost:PORT)"
        case .fileLimit(let needed, let hard):
            return
                "this run needs about \(needed) open files, past the hard limit of \(hard) (ulimit -Hn): run fewer workers or raise the hard limit"
        case .workerFailed(let i, let message): return "simulated worker \(i) failed: \(message)"
        case .joinTimedOut(let joined, let n, let secs):
            return String(
                format: "only %d of %d simulated workers joined within %.0f s (--join-timeout)", joined, n, secs)
        case .interrupted: return "stopped by a signal before the measurement window closed; nothing was measured"
        case .file(let path, let problem): return "\(path): \(problem)"
        }
    }
}
