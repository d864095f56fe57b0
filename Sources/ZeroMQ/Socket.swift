import CZeroMQ
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The socket types this project uses, plus a few for tests.
public enum SocketType: Sendable {
    case router, dealer, pair, req, rep, push, pull

    var raw: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .pair: return ZMQ_PAIR
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .push: return ZMQ_PUSH
        case .pull: return ZMQ_PULL
        }
    }
}

/// A ZeroMQ socket, owned by one thread at a time (zmq(7)); closed in `deinit` or by `close()`.
///
/// Options are typed properties; every call that can fail throws a `ZMQError` naming the call and its subject.
public final class Socket {
    private var handle: UnsafeMutableRawPointer?
    /// Keeps the context alive while this socket exists, so `zmq_ctx_term` never waits on a live socket.
    private let context: Context
    public let type: SocketType
    /// The endpoints this socket was bound or connected to, for error messages.
    public private(set) var endpoints: [String] = []

    /// Opens a socket with linger 0, so closing never hangs on unsent messages.
    public init(_ context: Context, _ type: SocketType) throws {
        guard let h = zmq_socket(context.handle, type.raw) else {
            throw ZMQError.last("zmq_socket", "opening a \(type) socket")
        }
        self.handle = h
        self.context = context
        self.type = type
        try setInt(ZMQ_LINGER, 0, "linger")
    }

    deinit { close() }

    /// Closes the socket now; later calls fail with ENOTSOCK-like errors.
    public func close() {
        if let h = handle {
            zmq_close(h)
            handle = nil
        }
    }

    private var live: UnsafeMutableRawPointer {
        get throws {
            guard let h = handle else {
                throw ZMQError(
                    kind: .call, function: "zmq_socket", errno: ENOTSOCK, reason: "socket already closed",
                    subject: "\(type) socket")
            }
            return h
        }
    }

    // MARK: - Endpoints

    /// Binds to `endpoint` (e.g. `tcp://127.0.0.1:5555`, `tcp://127.0.0.1:*`, `inproc://name`).
    /// - Throws: `ZMQError` naming the endpoint, e.g. when the port is in use.
    public func bind(_ endpoint: String) throws {
        if zmq_bind(try live, endpoint) != 0 { throw ZMQError.last("zmq_bind", endpoint) }
        endpoints.append(endpoint)
    }

    /// Connects to `endpoint`; ZeroMQ connects in the background and reconnects by itself.
    public func connect(_ endpoint: String) throws {
        if zmq_connect(try live, endpoint) != 0 { throw ZMQError.last("zmq_connect", endpoint) }
        endpoints.append(endpoint)
    }

    /// The endpoint actually bound, useful after binding to port `*`.
    public var lastEndpoint: String {
        get throws {
            var buffer = [CChar](repeating: 0, count: 512)
            var size = buffer.count
            if zmq_getsockopt(try live, ZMQ_LAST_ENDPOINT, &buffer, &size) != 0 {
                throw ZMQError.last("zmq_getsockopt", "ZMQ_LAST_ENDPOINT")
            }
            return String(cString: buffer)
        }
    }

    // MARK: - Options

    func setInt(_ option: Int32, _ value: Int32, _ name: String) throws {
        var v = value
        if zmq_setsockopt(try live, option, &v, MemoryLayout<Int32>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", "option \(name) = \(value)")
        }
    }

    func setInt64(_ option: Int32, _ value: Int64, _ name: String) throws {
        var v = value
        if zmq_setsockopt(try live, option, &v, MemoryLayout<Int64>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", "option \(name) = \(value)")
        }
    }

    func setBytes(_ option: Int32, _ value: [UInt8], _ name: String) throws {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("zmq_setsockopt", "option \(name)") }
    }

    func getInt(_ option: Int32, _ name: String) throws -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(try live, option, &v, &size) != 0 { throw ZMQError.last("zmq_getsockopt", name) }
        return v
    }

    /// Milliseconds that unsent messages are kept after close (set to 0 at creation).
    public func setLinger(milliseconds: Int32) throws { try setInt(ZMQ_LINGER, milliseconds, "ZMQ_LINGER") }
    /// Outgoing queue bound, in messages; past it, sends block or fail (per socket type).
    public func setSendHighWaterMark(_ messages: Int32) throws { try setInt(ZMQ_SNDHWM, messages, "ZMQ_SNDHWM") }
    /// Incoming queue bound, in messages.
    public func setReceiveHighWaterMark(_ messages: Int32) throws { try setInt(ZMQ_RCVHWM, messages, "ZMQ_RCVHWM") }
    /// Peers sending a larger message are disconnected: a bound on what a malformed peer can make us allocate.
    public func setMaxMessageSize(_ bytes: Int64) throws { try setInt64(ZMQ_MAXMSGSIZE, bytes, "ZMQ_MAXMSGSIZE") }
    /// Makes a ROUTER fail with EHOSTUNREACH for unknown peers instead of dropping the message silently.
    public func setRouterMandatory(_ on: Bool) throws {
        try setInt(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
    }
    /// Bounds on blocking send and receive, in milliseconds (-1: forever). Exceeding one throws `.timeout`.
    public func setSendTimeout(milliseconds: Int32) throws { try setInt(ZMQ_SNDTIMEO, milliseconds, "ZMQ_SNDTIMEO") }
    public func setReceiveTimeout(milliseconds: Int32) throws { try setInt(ZMQ_RCVTIMEO, milliseconds, "ZMQ_RCVTIMEO") }
    /// ZMTP heartbeats: a PING every `interval`, and the connection dropped when no traffic arrives in `timeout`.
    public func setHeartbeat(intervalMilliseconds: Int32, timeoutMilliseconds: Int32, ttlMilliseconds: Int32? = nil)
        throws
    {
        try setInt(ZMQ_HEARTBEAT_IVL, intervalMilliseconds, "ZMQ_HEARTBEAT_IVL")
        try setInt(ZMQ_HEARTBEAT_TIMEOUT, timeoutMilliseconds, "ZMQ_HEARTBEAT_TIMEOUT")
        if let ttl = ttlMilliseconds { try setInt(ZMQ_HEARTBEAT_TTL, ttl, "ZMQ_HEARTBEAT_TTL") }
    }
    /// Queue messages only to completed connections, so a send to a peer that is not there fails fast.
    public func setImmediate(_ on: Bool) throws { try setInt(ZMQ_IMMEDIATE, on ? 1 : 0, "ZMQ_IMMEDIATE") }
    /// The identity a ROUTER peer sees for this socket.
    public func setRoutingID(_ id: [UInt8]) throws { try setBytes(ZMQ_ROUTING_ID, id, "ZMQ_ROUTING_ID") }
    /// Milliseconds between reconnect attempts.
    public func setReconnectInterval(milliseconds: Int32) throws {
        try setInt(ZMQ_RECONNECT_IVL, milliseconds, "ZMQ_RECONNECT_IVL")
    }

    /// Makes this socket a CURVE server with the given 32-byte secret key.
    public func setCurveServer(secretKey: [UInt8]) throws {
        try setInt(ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER")
        try setBytes(ZMQ_CURVE_SECRETKEY, secretKey, "ZMQ_CURVE_SECRETKEY")
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func setCurveClient(serverKey: [UInt8], keyPair: CurveKeyPair) throws {
        try setBytes(ZMQ_CURVE_SERVERKEY, serverKey, "ZMQ_CURVE_SERVERKEY")
        try setBytes(ZMQ_CURVE_PUBLICKEY, keyPair.publicKey, "ZMQ_CURVE_PUBLICKEY")
        try setBytes(ZMQ_CURVE_SECRETKEY, keyPair.secretKey, "ZMQ_CURVE_SECRETKEY")
    }

    /// The ZAP domain a server's handler sees (`ZMQ_ZAP_DOMAIN`); setting one makes libzmq consult the handler.
    public func setZAPDomain(_ domain: String) throws {
        try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZMQ_ZAP_DOMAIN")
    }

    /// Reports this socket's connection events on `inproc://` `endpoint` (`zmq_socket_monitor`), read them
    /// with a PAIR socket connected there. `events` is a mask of `MonitorEvent` raw values.
    public func monitor(_ endpoint: String, events: Int32) throws {
        if zmq_socket_monitor(try live, endpoint, events) != 0 { throw ZMQError.last("zmq_socket_monitor", endpoint) }
    }

    /// The receive timeout currently set, in milliseconds.
    public var receiveTimeout: Int32 { get throws { try getInt(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO") } }

    // MARK: - Send and receive

    /// Sends `parts` as one multipart message. Frames made with `Message(sharing:)` go out without a copy.
    /// - Parameter dontWait: fail with `.timeout` instead of blocking when the queue is full.
    /// - Throws: `ZMQError`; `.unreachablePeer` from a ROUTER with `routerMandatory` for an unknown peer.
    public func send(_ parts: [Message], dontWait: Bool = false) throws {
        let h = try live
        for (i, part) in parts.enumerated() {
            var flags: Int32 = i + 1 < parts.count ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            // zmq_msg_send takes the frame's content; the Message object is left empty and still closes once.
            var rc = zmq_msg_send(part.msg, h, flags)
            while rc < 0 && zmq_errno() == EINTR { rc = zmq_msg_send(part.msg, h, flags) }
            if rc < 0 {
                throw ZMQError.last("zmq_msg_send", "sending frame \(i + 1) of \(parts.count) on \(describe)")
            }
        }
    }

    /// Sends byte arrays as one multipart message (copies each; for small control messages).
    public func send(_ parts: [[UInt8]], dontWait: Bool = false) throws {
        try send(parts.map { Message($0) }, dontWait: dontWait)
    }

    /// Receives one whole multipart message, blocking up to the receive timeout.
    /// - Throws: `.timeout` when the timeout passes with nothing received; `.terminated` on context shutdown.
    public func receive(dontWait: Bool = false) throws -> [Message] {
        let h = try live
        var parts: [Message] = []
        repeat {
            let m = Message()
            var rc = zmq_msg_recv(m.msg, h, dontWait && parts.isEmpty ? ZMQ_DONTWAIT : 0)
            while rc < 0 && zmq_errno() == EINTR { rc = zmq_msg_recv(m.msg, h, dontWait && parts.isEmpty ? ZMQ_DONTWAIT : 0) }
            if rc < 0 {
                throw ZMQError.last("zmq_msg_recv", "receiving on \(describe)")
            }
            parts.append(m)
        } while parts.last!.more
        return parts
    }

    /// What `receive(maxParts:maxBytes:)` got.
    public enum Bounded {
        /// A whole message within the bounds.
        case message([Message])
        /// A message past the bounds: its first part (a ROUTER's routing id), how many parts and bytes it had.
        /// Everything past the bounds was received into one reused frame and dropped, so it cost no memory
        /// here beyond what libzmq itself held.
        case oversized(first: Message?, parts: Int, bytes: Int)
    }

    /// Receives one whole multipart message, but keeps at most `maxParts` parts and `maxBytes` bytes of it:
    /// libzmq limits each frame (`ZMQ_MAXMSGSIZE`), not a message, so a peer can send millions of empty
    /// frames or several large ones as one message. Past either bound the rest is drained and dropped.
    /// - Throws: as `receive`.
    public func receive(maxParts: Int, maxBytes: Int, dontWait: Bool = false) throws -> Bounded {
        let h = try live
        var parts: [Message] = []
        var bytes = 0
        var count = 0
        var over = false
        var first: Message?
        let sink = Message()
        while true {
            let m = over ? sink : Message()
            var rc = zmq_msg_recv(m.msg, h, dontWait && count == 0 ? ZMQ_DONTWAIT : 0)
            while rc < 0 && zmq_errno() == EINTR { rc = zmq_msg_recv(m.msg, h, dontWait && count == 0 ? ZMQ_DONTWAIT : 0) }
            if rc < 0 { throw ZMQError.last("zmq_msg_recv", "receiving on \(describe)") }
            count += 1
            bytes += Int(rc)
            if count == 1 { first = m }
            let more = m.more
            if !over {
                parts.append(m)
                if count > maxParts || bytes > maxBytes {
                    over = true
                    parts = []
                }
            }
            if !more { break }
        }
        if over {
            // The dropped parts' memory goes back to the system now, not at some later allocation.
            releaseFreeMemory()
            return .oversized(first: first, parts: count, bytes: bytes)
        }
        return .message(parts)
    }

    var describe: String {
        endpoints.isEmpty ? "\(type) socket" : "\(type) socket \(endpoints.joined(separator: ","))"
    }

    // MARK: - Poll

    /// Waits until this socket has a message to read, up to `milliseconds` (-1 forever).
    /// - Returns: whether a message is ready.
    public func waitReadable(milliseconds: Int) throws -> Bool {
        try Socket.poll([self], milliseconds: milliseconds)[0]
    }

    /// Waits until any of `sockets` can be read, up to `milliseconds`; returns which can.
    public static func poll(_ sockets: [Socket], milliseconds: Int) throws -> [Bool] {
        var items = try sockets.map {
            zmq_pollitem_t(socket: try $0.live, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        }
        var rc = zmq_poll(&items, Int32(items.count), milliseconds)
        // A signal (SIGTERM on its way to a dispatch source) interrupts the wait: poll again rather than fail.
        // The retry may wait a little longer than asked; callers bound their loops by a deadline anyway.
        while rc < 0 && zmq_errno() == EINTR { rc = zmq_poll(&items, Int32(items.count), min(milliseconds, 50)) }
        if rc < 0 { throw ZMQError.last("zmq_poll", "polling \(sockets.map(\.describe).joined(separator: ", "))") }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// A CURVE key pair (32-byte keys), made with `zmq_curve_keypair`; keys travel as 40-character Z85 text.
public struct CurveKeyPair: Sendable {
    public let publicKey: [UInt8]
    public let secretKey: [UInt8]

    /// Generates a new key pair.
    public init() throws {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        if zmq_curve_keypair(&pub, &sec) != 0 {
            throw ZMQError.last("zmq_curve_keypair", "generating a CURVE key pair")
        }
        publicKey = try CurveKeyPair.decode(String(cString: pub))
        secretKey = try CurveKeyPair.decode(String(cString: sec))
    }

    /// The pair of a Z85 secret key (its public key is derived with `zmq_curve_public`).
    /// - Throws: `ZMQError` when the text is not a 40-character Z85 key.
    public init(secretZ85: String) throws {
        let text = secretZ85.trimmingCharacters(in: .whitespacesAndNewlines)
        secretKey = try CurveKeyPair.decode(text)
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, text) == 0 else {
            throw ZMQError.last("zmq_curve_public", "deriving the public key of a CURVE secret key")
        }
        publicKey = try CurveKeyPair.decode(String(cString: pub))
    }

    /// A 32-byte key as Z85 text.
    public static func z85(_ key: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: key.count * 5 / 4 + 1)
        _ = zmq_z85_encode(&out, key, key.count)
        return String(cString: out)
    }

    /// A 32-byte key from Z85 text.
    /// - Throws: `ZMQError` (EINVAL) naming the problem when `text` is not 40 Z85 characters.
    public static func decode(_ text: String) throws -> [UInt8] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count == 40 else {
            throw ZMQError(
                kind: .call, function: "zmq_z85_decode", errno: EINVAL,
                reason: "a CURVE key is 40 Z85 characters, got \(trimmed.utf8.count)", subject: "decoding a CURVE key")
        }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, trimmed) != nil else {
            throw ZMQError.last("zmq_z85_decode", "decoding a CURVE key")
        }
        return out
    }
}

/// Connection events a monitor reports (`ZMQ_EVENT_*`).
public enum MonitorEvent: Int32, Sendable {
    case connected = 0x0001
    case disconnected = 0x0200
    case handshakeFailedNoDetail = 0x0800
    case handshakeSucceeded = 0x1000
    case handshakeFailedProtocol = 0x2000
    case handshakeFailedAuth = 0x4000
}
