import Foundation
import Logging
import Training
import VariableScopes
import Wire
import ZeroMQ

/// Why talking to the parameter servers failed; each case names the server and what was awaited.
public enum RemoteError: Error, CustomStringConvertible {
    case timeout(server: String, position: Int, of: Int, waitingFor: String, seconds: Double)
    case refused(server: String, what: String, error: ErrorBody)
    case restarted(server: String)
    case unexpectedReply(server: String, what: String, got: String)
    case badEndpoint(String)

    public var description: String {
        switch self {
        case .timeout(let s, let i, let n, let w, let secs):
            return String(
                format:
                    "timed out after %.0f s waiting for ps %@ (%d of %d servers) to %@; is ps-server running there and reachable?",
                secs, s, i, n, w)
        case .refused(let s, let w, let e):
            return "ps \(s) refused \(w): \(e.message)"
        case .restarted(let s):
            return
                "ps \(s) restarted during training (its incarnation changed): the variables it held are gone; restart the run"
        case .unexpectedReply(let s, let w, let g):
            return "ps \(s) answered \(w) with \(g)"
        case .badEndpoint(let e):
            return "'\(e)' is not host:port"
        }
    }
}

/// Worker-side traffic counters.
public struct TrafficStats: Sendable {
    public var bytesSent = 0
    public var bytesReceived = 0
    public var steps = 0
    public var bytesPerStep: Double { steps == 0 ? 0 : Double(bytesSent + bytesReceived) / Double(steps) }
}

/// Pushes gradients to and pulls variables from parameter servers over ZeroMQ (one DEALER per server).
///
/// Each step sends, to every server at once, the push of step k's gradients and the pull for step
/// k + 1, then waits for both replies from each. Gradient frames borrow the variables' gradient
/// buffers (no copy): those are not written again until every reply, hence every send, is complete.
public final class RemoteExchange: ParameterExchange {
    public let servers: [String]
    let taskIndex: Int
    let numWorkers: Int
    let seed: UInt64
    let timeout: Double
    let logger: Logger
    let context: Context
    var sockets: [Socket] = []
    /// Whether the connections use CURVE (a wrong key then shows up as an unanswered hello).
    let usesCurve: Bool
    var placement: Placement?
    /// Variables on each server, in a fixed order.
    var onServer: [[Variable]] = []
    var incarnations: [UInt64?] = []
    var nextRequest: UInt64 = 1
    public private(set) var stats = TrafficStats()
    /// The welcome of each server (mode, optimizer).
    public private(set) var welcomes: [Welcome] = []

    /// - Parameters:
    ///   - servers: `host:port` of each parameter server, in the same order on every worker.
    ///   - timeout: seconds any single wait may take.
    ///   - curveServerKeys: the servers' CURVE public keys (one for all, or one per server); nil for plain TCP.
    public init(
        servers: [String], taskIndex: Int, numWorkers: Int, seed: UInt64, timeout: Double = 60,
        context: Context, logger: Logger, curveServerKeys: [[UInt8]]? = nil
    ) throws {
        for s in servers where s.split(separator: ":").count != 2 || Int(s.split(separator: ":").last!) == nil {
            throw RemoteError.badEndpoint(s)
        }
        if let keys = curveServerKeys, keys.count != 1 && keys.count != servers.count {
            throw RemoteError.badEndpoint(
                "\(keys.count) CURVE server keys for \(servers.count) servers: give one key, or one per server")
        }
        self.servers = servers
        self.usesCurve = !(curveServerKeys ?? []).isEmpty
        self.taskIndex = taskIndex
        self.numWorkers = numWorkers
        self.seed = seed
        self.timeout = timeout
        self.context = context
        self.logger = logger
        for s in servers {
            let socket = try Socket(context, .dealer)
            try socket.setRoutingID(Array("worker-\(taskIndex)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))".utf8))
            try socket.setSendHighWaterMark(64)
            try socket.setReceiveHighWaterMark(64)
            try socket.setMaxMessageSize(256 << 20)
            try socket.setHeartbeat(intervalMilliseconds: 1000, timeoutMilliseconds: 5000)
            try socket.setReconnectInterval(milliseconds: 100)
            try socket.setSendTimeout(milliseconds: Int32(timeout * 1000))
            if let keys = curveServerKeys, !keys.isEmpty {
                try socket.setCurveClient(
                    serverKey: keys.count == 1 ? keys[0] : keys[sockets.count], keyPair: try CurveKeyPair())
            }
            try socket.connect("tcp://\(s)")
            sockets.append(socket)
        }
        incarnations = Array(repeating: nil, count: servers.count)
    }

    // MARK: - ParameterExchange

    public func start(variables: [Variable]) throws {
        let placement = Placement(variables: variables, servers: servers.count)
        self.placement = placement
        onServer = servers.indices.map { i in variables.filter { placement.owner[$0.name] == i } }
        let hello = Hello(
            workerName: "worker \(taskIndex) (pid \(getpid()), \(ProcessInfo.processInfo.hostName))",
            numWorkers: numWorkers)
        let helloIDs = servers.indices.map { send($0, .hello, step: 0, body: Body.encode(hello)) }
        for (i, id) in helloIDs.enumerated() {
            let reply = try awaitReply(
                i, id, expecting: .welcome,
                what: usesCurve
                    ? "answer hello (with CURVE, a --curve-server-key that is not the server's also looks like this)"
                    : "answer hello")
            welcomes.append(try reply.decode(Welcome.self))
        }
        let registerIDs = servers.indices.map { i in
            send(
                i, .register, step: 0,
                body: Body.encode(Register(variables: onServer[i].map { VariableSpec($0, seed: seed) })))
        }
        for (i, id) in registerIDs.enumerated() {
            _ = try awaitReply(i, id, expecting: .registered, what: "register \(onServer[i].count) variables")
        }
        try pull(step: 1)
    }

    public func exchange(step: Int, variables: [Variable]) throws {
        var pushIDs: [UInt64] = []
        for i in servers.indices {
            let vars = onServer[i]
            let frames = vars.map { v in Message(borrowing: UnsafeRawBufferPointer(v.gradient)) }
            pushIDs.append(
                send(i, .push, step: UInt64(step), body: Body.encode(Names(names: vars.map(\.name))), tensors: frames))
        }
        try pull(step: step + 1, after: pushIDs)
        stats.steps += 1
    }

    public func finish(variables: [Variable]) throws {
        let ids = servers.indices.map { send($0, .done, step: 0, body: Body.encode(Names(names: []))) }
        for (i, id) in ids.enumerated() {
            _ = try awaitReply(i, id, expecting: .goodbye, what: "acknowledge that this worker is done")
        }
    }

    // MARK: - Messages

    /// Sends a pull for `step` to every server; first awaits the push acknowledgements `after`.
    func pull(step: Int, after pushIDs: [UInt64] = []) throws {
        let pullIDs = servers.indices.map { i in
            send(i, .pull, step: UInt64(step), body: Body.encode(Names(names: onServer[i].map(\.name))))
        }
        for (i, id) in pushIDs.enumerated() {
            _ = try awaitReply(i, id, expecting: .pushed, what: "acknowledge the gradients of step \(step - 1)")
        }
        for (i, id) in pullIDs.enumerated() {
            let reply = try awaitReply(i, id, expecting: .values, what: "send the variables for step \(step)")
            let vars = onServer[i]
            guard reply.tensors.count == vars.count else {
                throw RemoteError.unexpectedReply(
                    server: servers[i], what: "pull", got: "\(reply.tensors.count) tensors for \(vars.count) variables")
            }
            for (v, frame) in zip(vars, reply.tensors) {
                guard frame.count == v.count * 4 else {
                    throw RemoteError.unexpectedReply(
                        server: servers[i], what: "pull of \(v.name)", got: "\(frame.count) bytes")
                }
                frame.withUnsafeBytes { src in UnsafeMutableRawBufferPointer(v.value).copyMemory(from: src) }
            }
        }
    }

    /// Sends a request and returns its id. Send failures surface as the reply's timeout.
    @discardableResult
    func send(_ server: Int, _ kind: MessageKind, step: UInt64, body: [UInt8], tensors: [Message] = []) -> UInt64 {
        let id = nextRequest
        nextRequest += 1
        let header = Header(
            kind: kind, workerID: UInt32(taskIndex), requestID: id, step: step, incarnation: incarnations[server] ?? 0)
        let frames = Envelope.frames(header, body: body, tensors: tensors)
        stats.bytesSent += frames.reduce(0) { $0 + $1.count }
        do {
            try sockets[server].send(frames)
        } catch {
            logger.warning("send failed", metadata: ["ps.endpoint": "\(servers[server])", "error": "\(error)"])
        }
        return id
    }

    /// Waits for the reply to request `id` from `server`, within the timeout.
    func awaitReply(_ server: Int, _ id: UInt64, expecting kind: MessageKind, what: String) throws -> Envelope {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                throw RemoteError.timeout(
                    server: servers[server], position: server + 1, of: servers.count, waitingFor: what, seconds: timeout
                )
            }
            guard try sockets[server].waitReadable(milliseconds: max(1, Int(min(left, 1) * 1000))),
                let frames = try? sockets[server].receive(dontWait: true)
            else { continue }
            stats.bytesReceived += frames.reduce(0) { $0 + $1.count }
            let reply: Envelope
            do {
                reply = try Envelope(frames: frames[...])
            } catch {
                throw RemoteError.unexpectedReply(
                    server: servers[server], what: what, got: "a malformed message (\(error))")
            }
            if let known = incarnations[server], known != reply.header.incarnation {
                throw RemoteError.restarted(server: servers[server])
            }
            incarnations[server] = reply.header.incarnation
            guard reply.header.requestID == id else { continue }  // a late reply to an earlier request
            if reply.header.kind == .error {
                throw RemoteError.refused(server: servers[server], what: what, error: try reply.decode(ErrorBody.self))
            }
            guard reply.header.kind == kind else {
                throw RemoteError.unexpectedReply(server: servers[server], what: what, got: "\(reply.header.kind)")
            }
            return reply
        }
    }
}
