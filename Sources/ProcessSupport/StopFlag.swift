import Dispatch
import Foundation

/// A stop request that a signal handler sets and a loop reads at its next turn (thread-safe).
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    public init() {}

    public func request() {
        lock.lock()
        requested = true
        lock.unlock()
    }

    public var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }
}

/// Signal handling for both executables: the signals are ignored at the process level (so a blocking
/// call is at most interrupted, and retried) and delivered to `handler` on a dispatch queue instead.
public final class SignalHandlers: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    /// Installs `handler` for each of `signals` (e.g. SIGTERM, SIGINT, SIGHUP).
    public init(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { handler(sig) }
            source.resume()
            sources.append(source)
        }
    }

    /// Stops listening (the signals stay ignored).
    public func cancel() {
        for s in sources { s.cancel() }
        sources = []
    }

    deinit { cancel() }
}

/// A signal's name for logs.
public func signalName(_ sig: Int32) -> String {
    switch sig {
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGHUP: return "SIGHUP"
    default: return "signal \(sig)"
    }
}

/// Writes one line to standard output at once (unbuffered), so that a harness or a log collector reading
/// a pipe sees progress as it happens, in order.
public func emitLine(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 {
            if n < 0 && errno == EINTR { continue }
            return
        }
        offset += n
    }
    bytes.removeAll()
}
