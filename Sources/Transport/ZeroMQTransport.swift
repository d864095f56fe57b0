import Foundation
import Wire
import ZeroMQ

extension Frame {
    /// The frame as a ZeroMQ message, without copying: owned arrays are shared with libzmq, and borrowed
    /// memory (a worker's gradient buffer) is pointed at. Memory owned by another message is copied.
    public var message: Message {
        switch storage {
        case .bytes(let b): return Message(sharing: b)
        case .floats(let f): return Message(sharing: f)
        case .external(let p, let owner): return owner == nil ? Message(borrowing: p) : Message(copying: p)
        }
    }

    /// A received message read in place: the frame keeps the message alive.
    public init(_ message: Message) {
        self.init(external: message.withUnsafeBytes { $0 }, owner: message)
    }
}

/// How a ZeroMQ server socket is set up.
public struct ZeroMQServerSettings: Sendable {
    /// e.g. `tcp://0.0.0.0:2222`.
    public var endpoint: String
    /// Larger frames make libzmq drop the connection before we allocate them.
    public var maxMessageBytes: Int64 = 256 << 20
    /// A whole message with more parts or bytes than any valid request is dropped, and its peer ignored
    /// (libzmq itself limits only each frame).
    public var maxPartsPerMessage = 1 + 2 + 4096
    public var maxBytesPerMessage = 1 << 30
    /// Replies queued per peer before further ones are dropped: bounds the memory one slow reader holds.
    public var sendHighWaterMark: Int32 = 16
    public var receiveHighWaterMark: Int32 = 64
    /// With a secret key the socket speaks CURVE: traffic is encrypted and clients must know the public key.
    public var curveSecretKey: [UInt8]?
    /// With CURVE, admit only these client public keys (a ZAP handler); nil admits any key.
    public var admission: Admission?

    public init(endpoint: String) { self.endpoint = endpoint }
}

/// The parameter server's ROUTER socket.
public final class ZeroMQServerTransport: ServerTransport {
    let context: Context
    let socket: Socket
    let zap: ZAPHandler?
    /// The endpoint actually bound (a port of `*` resolved).
    public let boundEndpoint: String
    /// Bounds on one whole message (a routing id and a request): parts and bytes.
    let maxParts: Int
    let maxMessageTotal: Int
    private let lock = NSLock()
    private var oversized: [Oversized] = []
    /// When the last message arrived, and when free memory last went back to the system (`idleTrim`).
    private var lastMessage = ContinuousClock.now
    private var lastTrim = ContinuousClock.now
    /// Quiet this long, the process gives its free memory back, and again each such period while quiet. A
    /// sender that vanishes before its message is read leaves libzmq to free the frames it had buffered
    /// (hundreds of MB under the bounds) without any message reaching the server, and the kept large blocks
    /// (`keepLargeMessageBlocks`) would hold that in the server's resident size for good. Ten seconds, well
    /// past the 1 s heartbeats and any step a job takes between requests, so that training (a 15M model's
    /// slow steps, a sync wait for a straggler) keeps its large blocks; after a quiet spell the next large
    /// message pays its page faults again.
    static let idleTrim = Duration.seconds(10)

    /// Binds. - Throws: `ZMQError` naming the endpoint.
    public init(_ settings: ZeroMQServerSettings, context: Context) throws {
        self.context = context
        maxParts = settings.maxPartsPerMessage
        maxMessageTotal = settings.maxBytesPerMessage
        // The handler must listen before the first connection's handshake asks it.
        zap = try settings.admission.map { try ZAPHandler(context: context, admission: $0) }
        socket = try Socket(context, .router)
        try socket.setRouterMandatory(true)
        try socket.setMaxMessageSize(settings.maxMessageBytes)
        try socket.setSendHighWaterMark(settings.sendHighWaterMark)
        try socket.setReceiveHighWaterMark(settings.receiveHighWaterMark)
        try socket.setHeartbeat(intervalMilliseconds: 1000, timeoutMilliseconds: 5000)
        if let key = settings.curveSecretKey {
            try socket.setCurveServer(secretKey: key)
            if zap != nil { try socket.setZAPDomain("scoped-trainer") }
        }
        try socket.bind(settings.endpoint)
        boundEndpoint = try socket.lastEndpoint
    }

    public func receive(timeout: Double) throws -> (peer: Peer, frames: [Frame])? {
        guard try socket.waitReadable(milliseconds: max(0, Int(timeout * 1000))) else {
            let now = ContinuousClock.now
            if now - lastMessage >= Self.idleTrim && now - lastTrim >= Self.idleTrim {
                lastTrim = now
                releaseFreeMemory()
            }
            return nil
        }
        lastMessage = ContinuousClock.now
        let messages: [Message]
        do {
            switch try socket.receive(maxParts: maxParts, maxBytes: maxMessageTotal, dontWait: true) {
            case .message(let m): messages = m
            case .oversized(let first, let parts, let bytes):
                lock.lock()
                oversized.append(Oversized(peer: Peer(id: first?.bytes ?? []), parts: parts, bytes: bytes))
                lock.unlock()
                return nil
            }
        } catch let e as ZMQError where e.kind == .timeout {
            return nil
        }
        guard let identity = messages.first else { return nil }
        let peer = Peer(
            id: identity.bytes, key: messages.count > 1 ? messages[1].property("User-Id").flatMap { $0.isEmpty ? nil : $0 } : nil,
            address: messages.count > 1 ? messages[1].property("Peer-Address") : nil)
        return (peer, messages.dropFirst().map(Frame.init))
    }

    public func send(_ frames: [Frame], to peer: Peer) -> SendOutcome {
        do {
            try socket.send([Message(peer.id)] + frames.map(\.message), dontWait: true)
            return .sent
        } catch let e as ZMQError where e.kind == .timeout {
            return .queueFull
        } catch {
            return .unreachable
        }
    }

    public func drainRefusals() -> [Refusal] { zap?.admission.drainRefusals() ?? [] }

    public func drainOversized() -> [Oversized] {
        lock.lock()
        defer { lock.unlock() }
        let o = oversized
        oversized = []
        return o
    }

    public func close(lingerSeconds: Double) {
        try? socket.setLinger(milliseconds: Int32(max(0, min(lingerSeconds, 60)) * 1000))
        socket.close()
        zap?.stop()
    }
}

/// How a worker connects to one server.
public struct ZeroMQClientSettings: Sendable {
    /// `host:port`.
    public var server: String
    public var maxMessageBytes: Int64 = 256 << 20
    /// The server's CURVE public key; nil for plain TCP.
    public var curveServerKey: [UInt8]?
    /// This client's own CURVE key pair (the servers admit its public key); nil makes a throwaway pair.
    public var curveKeyPair: CurveKeyPair?

    public init(server: String) { self.server = server }
}

/// A worker's DEALER socket to one server, with a monitor that reports a refused handshake at once.
public final class ZeroMQClientTransport: ClientTransport {
    let context: Context
    let settings: ZeroMQClientSettings
    var socket: Socket
    var monitor: Socket?
    public private(set) var refusal: String?
    static let counter = Counter()

    public init(_ settings: ZeroMQClientSettings, context: Context) throws {
        self.context = context
        self.settings = settings
        (socket, monitor) = try Self.open(settings, context: context)
    }

    static func open(_ settings: ZeroMQClientSettings, context: Context) throws -> (Socket, Socket?) {
        let socket = try Socket(context, .dealer)
        try socket.setSendHighWaterMark(64)
        try socket.setReceiveHighWaterMark(64)
        try socket.setMaxMessageSize(settings.maxMessageBytes)
        try socket.setHeartbeat(intervalMilliseconds: 1000, timeoutMilliseconds: 5000)
        try socket.setReconnectInterval(milliseconds: 100)
        var monitor: Socket?
        if let key = settings.curveServerKey {
            try socket.setCurveClient(serverKey: key, keyPair: try settings.curveKeyPair ?? CurveKeyPair())
            let endpoint = "inproc://client-monitor-\(getpid())-\(counter.next())"
            try socket.monitor(
                endpoint,
                events: MonitorEvent.handshakeFailedAuth.rawValue | MonitorEvent.handshakeFailedProtocol.rawValue)
            let m = try Socket(context, .pair)
            try m.connect(endpoint)
            monitor = m
        }
        try socket.connect("tcp://\(settings.server)")
        return (socket, monitor)
    }

    public func send(_ frames: [Frame]) throws {
        // A DEALER queues while (re)connecting; a full queue means the server is long gone: report it as
        // a failed send, and the caller's bounded wait for the reply says which server.
        try socket.send(frames.map(\.message), dontWait: true)
    }

    public func receive(timeout: Double) throws -> [Frame]? {
        var sockets = [socket]
        if let monitor { sockets.append(monitor) }
        let ready = try Socket.poll(sockets, milliseconds: max(0, Int(timeout * 1000)))
        if ready.count > 1, ready[1], let monitor, let event = try? monitor.receive(dontWait: true),
            let first = event.first, first.count >= 2
        {
            let code = first.withUnsafeBytes { Int32($0[0]) | Int32($0[1]) << 8 }
            if code == MonitorEvent.handshakeFailedAuth.rawValue {
                refusal = "the server refused this worker's CURVE key (it is not in the server's --curve-authorized-keys)"
            } else if code == MonitorEvent.handshakeFailedProtocol.rawValue {
                refusal = "the CURVE handshake failed: --curve-server-key is probably not this server's public key"
            }
        }
        guard ready[0] else { return nil }
        do {
            return try socket.receive(dontWait: true).map(Frame.init)
        } catch let e as ZMQError where e.kind == .timeout {
            return nil
        }
    }

    public func reconnect() throws {
        socket.close()
        monitor?.close()
        refusal = nil
        (socket, monitor) = try Self.open(settings, context: context)
    }

    public func close() {
        socket.close()
        monitor?.close()
    }
}

/// A process-wide counter for unique inproc endpoint names.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
