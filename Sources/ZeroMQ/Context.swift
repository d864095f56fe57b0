import CZeroMQ
import Foundation

/// A ZeroMQ context: one per process, shared by every socket (contexts are thread-safe, sockets are not; zmq(7)).
public final class Context: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context.
    /// - Throws: `ZMQError` when libzmq cannot create one (out of file descriptors, say).
    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new", "creating the ZeroMQ context") }
        handle = h
    }

    /// Makes every blocking call on this context's sockets return `ETERM`, so threads blocked in receive
    /// can exit cleanly (used on SIGTERM). Sockets must still be closed; the context ends in `deinit`.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    private var terminated = false
    private let lock = NSLock()

    /// Ends the context now: waits until every closed socket's pending messages are sent (each socket's
    /// linger bounds the wait). Call it before a process exits so its last replies leave; every socket
    /// of the context must be closed first.
    public func terminate() {
        lock.lock()
        defer { lock.unlock() }
        guard !terminated else { return }
        terminated = true
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit {
        // Every socket holds a strong reference to its context, so all are closed by now.
        terminate()
    }

    /// libzmq's version, e.g. (4, 3, 4).
    public static var version: (major: Int, minor: Int, patch: Int) {
        var a: Int32 = 0
        var b: Int32 = 0
        var c: Int32 = 0
        zmq_version(&a, &b, &c)
        return (Int(a), Int(b), Int(c))
    }

    /// Whether libzmq was built with CURVE security (Debian's is).
    public static var hasCurve: Bool { zmq_has("curve") != 0 }
}
