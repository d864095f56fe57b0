import Foundation
import Wire

/// A network inside one process, for tests: one server and any number of clients, with no sockets.
/// Frames are handed over as they are (no serialisation), so tests run fast and deterministically.
public final class InProcessHub: @unchecked Sendable {
    private let lock = NSCondition()
    private var toServer: [(Peer, [Frame])] = []
    private var toClient: [[UInt8]: [[Frame]]] = [:]
    private var nextClient = 0

    public init() {}

    /// The server's end.
    public func server() -> ServerTransport { Server(hub: self) }

    /// A new client's end, with its own connection id (and optional admitted key).
    public func client(key: String? = nil) -> ClientTransport {
        lock.lock()
        defer { lock.unlock() }
        nextClient += 1
        return Client(hub: self, peer: Peer(id: Array("client-\(nextClient)".utf8), key: key))
    }

    fileprivate func post(_ frames: [Frame], from peer: Peer) {
        lock.lock()
        toServer.append((peer, frames))
        lock.broadcast()
        lock.unlock()
    }

    fileprivate func reply(_ frames: [Frame], to peer: Peer) {
        lock.lock()
        toClient[peer.id, default: []].append(frames)
        lock.broadcast()
        lock.unlock()
    }

    fileprivate func takeForServer(timeout: Double) -> (Peer, [Frame])? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while toServer.isEmpty { if !lock.wait(until: deadline) { return nil } }
        return toServer.removeFirst()
    }

    fileprivate func take(for peer: Peer, timeout: Double) -> [Frame]? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while toClient[peer.id, default: []].isEmpty { if !lock.wait(until: deadline) { return nil } }
        return toClient[peer.id]!.removeFirst()
    }

    private final class Server: ServerTransport {
        let hub: InProcessHub
        init(hub: InProcessHub) { self.hub = hub }
        func receive(timeout: Double) throws -> (peer: Peer, frames: [Frame])? {
            hub.takeForServer(timeout: timeout).map { (peer: $0.0, frames: $0.1) }
        }
        func send(_ frames: [Frame], to peer: Peer) -> SendOutcome {
            // Borrowed memory is copied, as a real transport would have sent it by the time it returns.
            hub.reply(frames.map { Frame($0.bytes) }, to: peer)
            return .sent
        }
        func drainRefusals() -> [Refusal] { [] }
        func drainOversized() -> [Oversized] { [] }
        func close(lingerSeconds: Double) {}
    }

    private final class Client: ClientTransport {
        let hub: InProcessHub
        var peer: Peer
        var refusal: String? { nil }
        init(hub: InProcessHub, peer: Peer) {
            self.hub = hub
            self.peer = peer
        }
        func send(_ frames: [Frame]) throws { hub.post(frames.map { Frame($0.bytes) }, from: peer) }
        func receive(timeout: Double) throws -> [Frame]? { hub.take(for: peer, timeout: timeout) }
        func reconnect() throws { peer = Peer(id: peer.id + Array("'".utf8), key: peer.key) }
        func close() {}
    }
}
