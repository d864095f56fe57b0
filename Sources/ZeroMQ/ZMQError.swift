import CZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure of a ZeroMQ call, carrying what a person needs to act on it: the call, errno, and libzmq's text.
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, in kinds a caller may want to branch on.
    public enum Kind: Equatable, Sendable {
        /// A bounded wait ran out (EAGAIN from a socket with a timeout, or a poll that saw nothing).
        case timeout
        /// The context was shut down (ETERM): the process is stopping.
        case terminated
        /// A ROUTER with `routerMandatory` was asked to send to a peer it does not know (EHOSTUNREACH).
        case unreachablePeer
        /// A signal arrived during a blocking call (EINTR): retry it.
        case interrupted
        /// Any other failure of a libzmq call.
        case call
    }

    public let kind: Kind
    /// The libzmq function that failed, e.g. `zmq_bind`.
    public let function: String
    public let errno: Int32
    /// `zmq_strerror(errno)`.
    public let reason: String
    /// What the call was about: an endpoint, an option, or what a wait was waiting for.
    public let subject: String

    public init(kind: Kind, function: String, errno: Int32, reason: String, subject: String) {
        self.kind = kind
        self.function = function
        self.errno = errno
        self.reason = reason
        self.subject = subject
    }

    /// The error for the calling thread's current `zmq_errno()`.
    static func last(_ function: String, _ subject: String) -> ZMQError {
        let code = zmq_errno()
        let kind: Kind
        switch code {
        case EAGAIN: kind = .timeout
        case ETERM: kind = .terminated
        case EHOSTUNREACH: kind = .unreachablePeer
        case EINTR: kind = .interrupted
        default: kind = .call
        }
        return ZMQError(
            kind: kind, function: function, errno: code, reason: String(cString: zmq_strerror(code)), subject: subject)
    }

    public var description: String {
        switch kind {
        case .timeout:
            return "timed out \(subject) (\(function): \(reason))"
        case .terminated:
            return "ZeroMQ context shut down while \(subject) (\(function))"
        case .unreachablePeer:
            return "peer unreachable: \(subject) (\(function): \(reason), errno \(errno))"
        case .interrupted:
            return "interrupted by a signal while \(subject) (\(function))"
        case .call:
            return "\(function) failed for \(subject): \(reason) (errno \(errno))"
        }
    }
}
