import Wire

/// What became of a reply handed to a transport. Replies never block the server: a full queue drops.
public enum SendOutcome: Sendable, Equatable {
    case sent
    /// The peer's outgoing queue is full (it does not read): the reply was dropped.
    case queueFull
    /// The peer is gone.
    case unreachable
}

/// The server's side of the network: requests in, replies out. Implementations: `ZeroMQServerTransport`
/// (a ROUTER socket) and `InProcessHub`'s server (tests).
public protocol ServerTransport: AnyObject {
    /// Waits up to `timeout` seconds for one request; nil when none came. Signals do not end the wait early
    /// with an error.
    func receive(timeout: Double) throws -> (peer: Peer, frames: [Frame])?
    /// Hands a reply to the network without blocking.
    func send(_ frames: [Frame], to peer: Peer) -> SendOutcome
    /// Peers refused at the door since the last call (admission): for logs and counters.
    func drainRefusals() -> [Refusal]
    /// Messages dropped since the last call for having more parts or bytes than any valid request.
    func drainOversized() -> [Oversized]
    /// Lets queued replies leave (bounded by `lingerSeconds`), then closes.
    func close(lingerSeconds: Double)
}

/// A message dropped for its size: who sent it, how many parts and bytes it had.
public struct Oversized: Sendable, Equatable {
    public let peer: Peer
    public let parts: Int
    public let bytes: Int
    public init(peer: Peer, parts: Int, bytes: Int) {
        self.peer = peer
        self.parts = parts
        self.bytes = bytes
    }
}

/// A peer that admission refused.
public struct Refusal: Sendable, Equatable {
    public let key: String
    public let address: String
    public init(key: String, address: String) {
        self.key = key
        self.address = address
    }
}

/// A worker's connection to one server.
public protocol ClientTransport: AnyObject {
    /// Hands a request to the network. Borrowed frames must stay valid until the request is answered.
    func send(_ frames: [Frame]) throws
    /// Waits up to `timeout` seconds for one reply; nil when none came.
    func receive(timeout: Double) throws -> [Frame]?
    /// Drops the connection and anything queued on it, and connects afresh (after a server was lost).
    func reconnect() throws
    /// Why the server refused this client at the handshake, if it did (e.g. its CURVE key is not admitted).
    var refusal: String? { get }
    func close()
}
