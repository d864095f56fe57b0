import CSignals
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

/// Signal handling for both executables, on a thread of its own.
///
/// `prepareProcess()`, the first thing each executable does, blocks SIGTERM, SIGINT and SIGHUP in the main
/// thread (every thread made after it inherits the mask), so none of ours is interrupted by them, and installs
/// a handler for them that writes the signal's number to a pipe (`CSignals`). One dedicated thread, the only
/// one of ours with them unblocked, reads the pipe and calls the handlers registered. A thread a library
/// started before `main` (OpenBLAS starts one at load) does not block them: a signal the kernel hands it runs
/// the same handler, where the default action used to kill the process (a SIGTERM'd worker exited 143,
/// without telling its servers it was done). No load on Swift's cooperative pool or Dispatch's queues can
/// delay a SIGTERM. A signal ignored when the process starts is still taken where a handler asks for it (as the
/// blocked signals always were: a background job's SIGINT), and stays ignored where none does (nohup's
/// SIGHUP to a worker). It also ignores SIGPIPE: a write to a closed pipe (a log reader gone after Ctrl-C)
/// fails with EPIPE instead of killing the process before its final checkpoint.
public final class SignalHandlers: @unchecked Sendable {
    /// The signals taken on the signal thread.
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    private static let lock = NSLock()
    nonisolated(unsafe) private static var handlers: [Int32: [(id: Int, call: @Sendable (Int32) -> Void)]] = [:]
    nonisolated(unsafe) private static var nextID = 0
    nonisolated(unsafe) private static var started = false
    /// Signals someone has asked for: once handled, a signal with no handler left is ignored, as before.
    nonisolated(unsafe) private static var everHandled: Set<Int32> = []
    private let ids: [(Int32, Int)]

    /// Blocks the handled signals in this thread (and every thread made after it), ignores SIGPIPE, and
    /// starts the signal thread. Call it first in `main`; calling it again does nothing.
    public static func prepareProcess() {
        lock.lock()
        defer { lock.unlock() }
        guard !started else { return }
        started = true
        signal(SIGPIPE, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            // No pipe (out of descriptors at start): the signals keep their default action, unblocked.
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            return
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        var wasIgnored = [Int32](repeating: 0, count: handled.count)
        _ = handled.withUnsafeBufferPointer { signals in
            wasIgnored.withUnsafeMutableBufferPointer {
                scoped_trainer_forward_signals(writeEnd, signals.baseAddress, Int32(signals.count), $0.baseAddress)
            }
        }
        let ignoredAtStart = Set(zip(handled, wasIgnored).filter { $0.1 != 0 }.map(\.0))
        let thread = Thread {
            var mine = sigset_t()
            sigemptyset(&mine)
            for s in handled { sigaddset(&mine, s) }
            pthread_sigmask(SIG_UNBLOCK, &mine, nil)
            // Named for /proc (…/task/*/comm), where tests tell it from a library's threads.
            scoped_trainer_name_this_thread("signals")
            while true {
                var byte: UInt8 = 0
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                let sig = Int32(byte)
                lock.lock()
                let calls = handlers[sig] ?? []
                let asked = everHandled.contains(sig)
                lock.unlock()
                if calls.isEmpty {
                    // Nobody ever asked for it: what it would have done unblocked. Ignored at start (nohup's
                    // SIGHUP) it stays ignored; otherwise its default action, ending the process.
                    if !asked && !ignoredAtStart.contains(sig) { _exit(128 + sig) }
                    continue
                }
                for c in calls { c.call(sig) }
            }
        }
        thread.name = "signals"
        thread.start()
    }

    /// Calls `handler` (on the signal thread) for each of `signals` until `cancel`.
    public init(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        Self.prepareProcess()
        Self.lock.lock()
        var ids: [(Int32, Int)] = []
        for sig in signals where Self.handled.contains(sig) {
            Self.nextID += 1
            Self.handlers[sig, default: []].append((Self.nextID, handler))
            Self.everHandled.insert(sig)
            ids.append((sig, Self.nextID))
        }
        Self.lock.unlock()
        self.ids = ids
    }

    /// Stops calling the handler (the signals stay taken by the signal thread).
    public func cancel() {
        Self.lock.lock()
        for (sig, id) in ids { Self.handlers[sig]?.removeAll { $0.id == id } }
        Self.lock.unlock()
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
