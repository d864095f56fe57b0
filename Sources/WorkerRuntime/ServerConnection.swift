import Foundation
import Logging
import Transport
import Wire

/// One parameter server as this worker knows it: its connection, the incarnation it answered with, its
/// welcome, when it was last heard from on this connection, and the step labels of what was sent to it.
final class ServerConnection {
    let endpoint: String
    /// Its place in `--ps` (0-based) and the number of servers, for messages.
    let position: Int
    let count: Int
    let transport: ClientTransport
    /// The server process's incarnation (nil until it first answers, and while reconnecting).
    var incarnation: UInt64?
    var welcome: Welcome?
    /// Whether it agreed to packed tensors.
    var packed = false
    /// When anything last arrived on this connection (monotonic seconds).
    var lastHeard = -Double.infinity
    /// The last update count it reported, to count what a restart lost.
    var lastUpdates: UInt64 = 0
    /// Sync: the step label of the next push (its step + 1).
    var label: UInt64 = 1
    /// The last values body seen (it repeats; one that differs is read for news).
    var lastValuesBody: [UInt8] = []
    /// Whether it has ever answered this worker.
    var everHeard: Bool { lastHeard > -Double.infinity }

    init(endpoint: String, position: Int, count: Int, transport: ClientTransport) {
        self.endpoint = endpoint
        self.position = position
        self.count = count
        self.transport = transport
    }

    /// Hands frames to the connection; returns the bytes sent. A failed send is only logged: the bounded
    /// wait for the reply notices, and recovery re-sends.
    func send(_ frames: [Frame], logger: Logger) -> Int {
        do {
            try transport.send(frames)
        } catch {
            logger.debug("send failed", metadata: ["ps.endpoint": "\(endpoint)", "error": "\(error)"])
        }
        return frames.reduce(0) { $0 + $1.count }
    }

    /// Waits up to `timeout` for one message; nil when none came.
    /// - Throws: `RemoteError.keyRefused` when the handshake was refused, `.unexpectedReply` for bytes that
    ///   are not a message of the protocol.
    func receive(timeout: Double, bytes: inout Int) throws -> Envelope? {
        if let refusal = transport.refusal { throw RemoteError.keyRefused(server: endpoint, reason: refusal) }
        guard let frames = try transport.receive(timeout: timeout) else { return nil }
        bytes += frames.reduce(0) { $0 + $1.count }
        do {
            let reply = try Envelope(frames: frames[...])
            lastHeard = MonotonicClock.now()
            return reply
        } catch {
            throw RemoteError.unexpectedReply(server: endpoint, what: "a reply", got: "a malformed message (\(error))")
        }
    }
}
