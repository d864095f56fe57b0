import Exchange
import Foundation
import Logging
import Transport
import VariableScopes
import Wire

/// Why talking to the parameter servers failed; each case names the server and what was awaited.
public enum RemoteError: Error, CustomStringConvertible {
    case timeout(server: String, position: Int, of: Int, waitingFor: String, seconds: Double)
    case refused(server: String, what: String, error: ErrorBody)
    case lost(server: String, seconds: Double, attempts: Int, hint: String)
    case keyRefused(server: String, reason: String)
    case unexpectedReply(server: String, what: String, got: String)
    case badEndpoint(String)

    public var description: String {
        switch self {
        case .timeout(let s, let i, let n, let w, let secs):
            return String(
                format:
                    "timed out after %.0f s waiting for ps %@ (%d of %d servers) to %@; it answers pings, so it is alive but slow (a sync step waiting for other workers?)",
                secs, s, i, n, w)
        case .refused(let s, let w, let e):
            return "ps \(s) refused \(w): \(e.message)"
        case .lost(let s, let secs, let n, let hint):
            return String(
                format:
                    "lost ps %@ and could not reconnect within %.0f s (%d attempts): is ps-server running there and reachable? (--recovery-timeout)%@",
                s, secs, n, hint)
        case .keyRefused(let s, let r):
            return "ps \(s): \(r)"
        case .unexpectedReply(let s, let w, let g):
            return "ps \(s) answered \(w) with \(g)"
        case .badEndpoint(let e):
            return "'\(e)' is not host:port"
        }
    }

    /// Whether trying again later may succeed (a lost peer) rather than never (a refusal, a conflict).
    public var isRetryable: Bool {
        switch self {
        case .lost, .timeout: return true
        case .refused, .keyRefused, .unexpectedReply, .badEndpoint: return false
        }
    }
}

/// Worker-side traffic and recovery counters.
public struct TrafficStats: Sendable {
    public var bytesSent = 0
    public var bytesReceived = 0
    public var steps = 0
    /// Servers lost and found again, and the updates they had applied after their last checkpoint.
    public var recoveries = 0
    public var updatesLost: UInt64 = 0
    public var recoverySeconds = 0.0
    /// Sync gradients that arrived after their step was applied without them.
    public var lateGradients = 0
    /// Steps whose exchange overlapped the next step (`prefetch`): each ran on values one step staler.
    public var prefetchedSteps = 0
    /// Bytes moved by joining (hello, register, the first pull), left out of the per-step figure.
    public var bytesAtStart = 0
    /// Steady-state traffic: what training steps moved, per step.
    public var bytesPerStep: Double {
        steps == 0 ? 0 : Double(bytesSent + bytesReceived - bytesAtStart) / Double(steps)
    }
    public init() {}
}

/// How a worker talks to its servers.
public struct RemoteSettings: Sendable {
    public var taskIndex: Int
    public var numWorkers: Int
    /// The graph seed: servers create variables from it exactly as every worker does.
    public var seed: UInt64
    /// Seconds a live (pinging) server may take to answer one request.
    public var timeout: Double = 60
    /// Seconds between pings while a reply is slow.
    public var heartbeat: Double = 1
    /// Seconds without any word from a server before it is counted lost and reconnected.
    public var lostAfter: Double = 4
    /// Seconds to keep reconnecting to a lost server before giving up.
    public var recoveryTimeout: Double = 300
    /// Register with the worker's current values (after `--restore`): a server that does not hold a
    /// variable yet takes them; one that does keeps its own.
    public var registerValues = false
    /// Whether the connections use CURVE (for the hint when a server never answers).
    public var usesCurve = false
    /// How tensors cross the wire (`--wire-dtype`).
    public var wireDType: WireDType = .float32
    /// Async only: send step k's push and pull and return at once; step k + 1 then runs on the values
    /// it has (one step staler) while the servers work, and the replies are taken in at the next exchange.
    public var prefetch = false
    /// The data scaling this worker trains with, announced in hello so that servers hold every worker of a
    /// job to one and record it.
    public var scaling: String?
    /// The model's description for the servers to record in their checkpoints (`Hello.model`).
    public var model: String?
    /// Offer to send and take each message's tensors packed in one frame (`Hello.packed`); a server that
    /// agrees gets them so, others a frame per tensor.
    public var packed = true
    /// The largest frame this worker's connections take (its ZeroMQ message limit), told to servers so
    /// that they pack values only up to it.
    public var maxFrameBytes = 256 << 20

    public init(taskIndex: Int, numWorkers: Int, seed: UInt64) {
        self.taskIndex = taskIndex
        self.numWorkers = numWorkers
        self.seed = seed
    }
}

/// Pushes gradients to and pulls variables from parameter servers, over any `ClientTransport`.
///
/// Each step sends, to every server at once, the push of step k's gradients and the pull for step k + 1,
/// then waits for both replies from each. With a server that takes packed tensors (all current ones),
/// a push's gradients are copied back to back into one send buffer and travel as one frame, and the values
/// come back as one: a 233 KB copy costs less than the system calls and wake-ups of a frame per tensor.
/// Otherwise gradient frames borrow the variables' gradient buffers (no copy). Either way the memory sent
/// is not written again until every reply, hence every send, is complete.
///
/// A server that stops answering (no reply and no pong for `lostAfter`) or comes back with a new
/// incarnation is recovered: reconnect with exponential backoff, hello, register again (create-if-absent),
/// then re-send the unanswered requests with their original ids, so a push is applied once.
public final class RemoteExchange: ParameterExchange {
    public let servers: [String]
    let settings: RemoteSettings
    let logger: Logger
    let transports: [ClientTransport]
    /// This process's incarnation: servers tell a re-sent request from a new process by it.
    public let incarnation = UInt64.random(in: 1...UInt64.max)
    var placement: Placement?
    /// Variables on each server, in a fixed order.
    var onServer: [[Variable]] = [] {
        didSet { namesBodies = onServer.map { vars in Body.encode(Names(names: vars.map(\.name))) } }
    }
    /// The body naming each server's variables, the same in every push and pull: encoded once.
    var namesBodies: [[UInt8]] = []
    var incarnations: [UInt64?]
    /// The last update count each server reported, to count what a restart lost.
    var lastUpdates: [UInt64]
    /// Sync: the step label of the next push to each server (its step + 1).
    var labels: [UInt64]
    var nextRequest: UInt64 = 1
    /// When the current round's requests went out.
    var sentAt = Date()
    public private(set) var stats = TrafficStats()
    /// The welcome of each server (mode, optimizer).
    public private(set) var welcomes: [Welcome] = []
    /// Called with each recovery's description (metrics, logs).
    public var onRecovery: ((String) -> Void)?
    /// Called with each reply's latency in seconds, by request kind (metrics).
    public var onLatency: ((MessageKind, Double) -> Void)?
    /// With bfloat16 on the wire or prefetch: one send buffer per variable that gradients are narrowed or
    /// copied into. Frames point into it, and it is not written again until every reply has arrived.
    var narrow: [ObjectIdentifier: UnsafeMutableRawBufferPointer] = [:]
    /// The last push acknowledgement decoded, by its bytes.
    var lastAcknowledgement: (body: [UInt8], pushed: Pushed)?
    /// Per server: whether it agreed to packed tensors.
    var packedWith: [Bool]
    /// Per server, when packed: the one send buffer its pushes' gradients are copied (or narrowed) into,
    /// back to back. Like `narrow`, it is not written again until every reply has arrived.
    var packedBuffers: [Int: UnsafeMutableRawBufferPointer] = [:]
    /// With prefetch: the round the last `exchange` sent, answered at the next one.
    var inFlight: [Request]?

    deinit {
        for b in narrow.values { b.deallocate() }
        for b in packedBuffers.values { b.deallocate() }
    }

    /// - Parameters:
    ///   - servers: `host:port` of each parameter server, in the same order on every worker.
    ///   - transports: one connection per server, in the same order.
    public init(servers: [String], transports: [ClientTransport], settings: RemoteSettings, logger: Logger) throws {
        guard !servers.isEmpty, servers.count == transports.count else {
            throw RemoteError.badEndpoint("\(servers.count) servers for \(transports.count) connections")
        }
        self.servers = servers
        self.transports = transports
        self.settings = settings
        self.logger = logger
        incarnations = Array(repeating: nil, count: servers.count)
        lastUpdates = Array(repeating: 0, count: servers.count)
        labels = Array(repeating: 1, count: servers.count)
        packedWith = Array(repeating: false, count: servers.count)
    }

    /// Checks `host:port` strings: a host and a port in 1...65535.
    public static func checkEndpoints(_ servers: [String]) throws {
        guard !servers.isEmpty else { throw RemoteError.badEndpoint("") }
        for s in servers {
            guard let colon = s.lastIndex(of: ":"), colon != s.startIndex, let port = Int(s[s.index(after: colon)...]),
                (1...65535).contains(port)
            else { throw RemoteError.badEndpoint(s) }
        }
    }

    // MARK: - ParameterExchange

    public func start(variables: [Variable]) throws -> Int {
        let placement = Placement(variables: variables, servers: servers.count)
        self.placement = placement
        onServer = servers.indices.map { i in variables.filter { placement.owner[$0.name] == i } }
        var resume: UInt64 = 0
        for i in servers.indices {
            let welcome = try join(i, deadline: Date().addingTimeInterval(settings.timeout))
            resume = max(resume, welcome.resumeStep)
        }
        try roundTrip(servers.indices.map { i in pullRequest(i, step: Int(resume) + 1) }, what: "send the variables")
        stats.bytesAtStart = stats.bytesSent + stats.bytesReceived
        return Int(resume)
    }

    public func exchange(step: Int, variables: [Variable]) throws {
        let prefetching = settings.prefetch && welcomes.allSatisfy { $0.mode == .async }
        // With prefetch, the last step's round is answered now, after this step's forward and backward ran
        // on the values it had: the pulled values land between two steps, never under a running one.
        if let previous = inFlight {
            inFlight = nil
            try complete(previous)
        }
        var requests: [Request] = []
        for i in servers.indices {
            let vars = onServer[i]
            let frames: [Frame]
            let size = settings.wireDType.size
            let packedBytes = vars.reduce(0) { $0 + $1.count * size }
            if packedWith[i], vars.count > 1, packedBytes <= welcomes[i].maxFrameBytes ?? Int.max {
                // One frame for all of this server's gradients: copied (or narrowed) back to back. Past the
                // server's frame limit, a frame per tensor instead (it takes both).
                let buffer = packedBuffer(i, bytes: packedBytes)
                var offset = 0
                for v in vars {
                    put(v, into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + v.count * size]))
                    offset += v.count * size
                }
                frames = [Frame(external: UnsafeRawBufferPointer(buffer), owner: nil)]
            } else if settings.wireDType == .bf16 || prefetching {
                // Narrowed, or (prefetch) copied: the next backward pass writes the gradient buffers while
                // this push may still be on its way.
                frames = vars.map { v in
                    let buffer = stagingBuffer(for: v, bytes: v.count * size)
                    put(v, into: buffer)
                    return Frame(external: UnsafeRawBufferPointer(buffer), owner: nil)
                }
            } else {
                frames = vars.map { v in Frame(external: UnsafeRawBufferPointer(v.gradient), owner: nil) }
            }
            let label = welcomes[i].mode == .sync ? labels[i] : UInt64(step)
            requests.append(
                request(
                    i, .push, step: label, body: namesBodies[i], tensors: frames,
                    what: "acknowledge the gradients of step \(step)"))
        }
        for i in servers.indices { requests.append(pullRequest(i, step: step + 1)) }
        if prefetching {
            for r in requests { send(r) }
            sentAt = Date()
            inFlight = requests
            stats.prefetchedSteps += 1
        } else {
            try roundTrip(requests, what: "")
        }
        stats.steps += 1
    }

    public func finish(variables: [Variable]) throws {
        if let previous = inFlight {
            inFlight = nil
            try complete(previous)
        }
        try roundTrip(
            servers.indices.map {
                request($0, .done, step: 0, body: Body.encode(Names(names: [])), what: "acknowledge that this worker is done")
            }, what: "")
    }

    /// A send buffer of `bytes` for `v`'s gradient (narrowed to bfloat16, or copied for prefetch).
    func stagingBuffer(for v: Variable, bytes: Int) -> UnsafeMutableRawBufferPointer {
        if let b = narrow[ObjectIdentifier(v)], b.count == bytes { return b }
        narrow[ObjectIdentifier(v)]?.deallocate()
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 16)
        narrow[ObjectIdentifier(v)] = b
        return b
    }

    /// `v`'s gradient in the wire dtype, into `slot` (narrowed to bfloat16, or copied).
    func put(_ v: Variable, into slot: UnsafeMutableRawBufferPointer) {
        if settings.wireDType == .bf16 {
            BFloat16.encode(UnsafeBufferPointer(v.gradient), into: slot)
        } else {
            slot.copyMemory(from: UnsafeRawBufferPointer(v.gradient))
        }
    }

    /// Pulled values in the wire dtype, into `v` (widened from bfloat16, or copied).
    func take(_ bytes: UnsafeRawBufferPointer, into v: Variable) {
        if settings.wireDType == .bf16 {
            BFloat16.decode(bytes, into: v.value)
        } else {
            UnsafeMutableRawBufferPointer(v.value).copyMemory(from: bytes)
        }
    }

    /// Server `i`'s packed send buffer, of `bytes`.
    func packedBuffer(_ i: Int, bytes: Int) -> UnsafeMutableRawBufferPointer {
        if let b = packedBuffers[i], b.count == bytes { return b }
        packedBuffers[i]?.deallocate()
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        let sized = UnsafeMutableRawBufferPointer(rebasing: b[0..<bytes])
        packedBuffers[i] = sized
        return sized
    }

    // MARK: - Requests

    /// One request to one server, kept whole so it can be re-sent with the same id after a recovery.
    struct Request {
        let server: Int
        let kind: MessageKind
        let id: UInt64
        let step: UInt64
        let body: [UInt8]
        let tensors: [Frame]
        let what: String
        var reply: Envelope?
    }

    func request(
        _ server: Int, _ kind: MessageKind, step: UInt64, body: [UInt8], tensors: [Frame] = [], what: String
    ) -> Request {
        let id = nextRequest
        nextRequest += 1
        return Request(server: server, kind: kind, id: id, step: step, body: body, tensors: tensors, what: what)
    }

    func pullRequest(_ i: Int, step: Int) -> Request {
        request(
            i, .pull, step: UInt64(step), body: namesBodies[i],
            what: "send the variables for step \(step)")
    }

    func send(_ r: Request) {
        let header = Header(
            kind: r.kind, workerID: UInt32(settings.taskIndex), requestID: r.id, step: r.step, incarnation: incarnation)
        let frames = Envelope.frames(header, body: r.body, tensors: r.tensors)
        stats.bytesSent += frames.reduce(0) { $0 + $1.count }
        do {
            try transports[r.server].send(frames)
        } catch {
            // The reply's bounded wait notices, and recovery re-sends.
            logger.debug("send failed", metadata: ["ps.endpoint": "\(servers[r.server])", "error": "\(error)"])
        }
    }

    /// Sends every request, then waits for every reply, recovering lost servers on the way; applies the
    /// replies (values into the variables, labels, counters).
    func roundTrip(_ requests: [Request], what: String) throws {
        for r in requests { send(r) }
        sentAt = Date()
        try complete(requests)
    }

    /// Waits for the replies to requests already sent, recovering lost servers, and applies them.
    func complete(_ requests: [Request]) throws {
        var byServer: [Int: [Request]] = [:]
        for r in requests { byServer[r.server, default: []].append(r) }
        for i in servers.indices {
            guard var pending = byServer[i] else { continue }
            try awaitReplies(&pending, server: i)
            for r in pending { try apply(r) }
        }
    }

    /// Waits for the replies to `requests` (all to server `i`).
    func awaitReplies(_ requests: inout [Request], server i: Int) throws {
        var lastHeard = Date()
        var lastPing = Date()
        var deadline = Date().addingTimeInterval(settings.timeout)
        while let open = requests.firstIndex(where: { $0.reply == nil }) {
            let now = Date()
            if let refusal = transports[i].refusal { throw RemoteError.keyRefused(server: servers[i], reason: refusal) }
            if now.timeIntervalSince(lastHeard) > settings.lostAfter {
                try recover(i, because: "no word for \(String(format: "%.1f", settings.lostAfter)) s", since: lastHeard)
                for r in requests where r.reply == nil { send(r) }
                (lastHeard, lastPing, deadline) = (Date(), Date(), Date().addingTimeInterval(settings.timeout))
                continue
            }
            if now > deadline {
                throw RemoteError.timeout(
                    server: servers[i], position: i + 1, of: servers.count, waitingFor: requests[open].what,
                    seconds: settings.timeout)
            }
            if now.timeIntervalSince(lastHeard) >= settings.heartbeat && now.timeIntervalSince(lastPing) >= settings.heartbeat {
                send(request(i, .ping, step: 0, body: Body.encode(Names(names: [])), what: "answer a ping"))
                lastPing = now
            }
            guard let frames = try transports[i].receive(timeout: min(0.25, settings.heartbeat / 2)) else { continue }
            stats.bytesReceived += frames.reduce(0) { $0 + $1.count }
            let reply: Envelope
            do {
                reply = try Envelope(frames: frames[...])
            } catch {
                throw RemoteError.unexpectedReply(server: servers[i], what: requests[open].what, got: "a malformed message (\(error))")
            }
            if let known = incarnations[i], known != reply.header.incarnation {
                try recover(i, because: "it restarted (new incarnation)", since: lastHeard)
                for r in requests where r.reply == nil { send(r) }
                (lastHeard, lastPing, deadline) = (Date(), Date(), Date().addingTimeInterval(settings.timeout))
                continue
            }
            incarnations[i] = reply.header.incarnation
            lastHeard = Date()
            guard let k = requests.firstIndex(where: { $0.id == reply.header.requestID && $0.reply == nil }) else {
                continue  // a pong, or a late reply to an earlier request
            }
            if reply.header.kind == .error {
                throw RemoteError.refused(server: servers[i], what: requests[k].what, error: try reply.decode(ErrorBody.self))
            }
            requests[k].reply = reply
            onLatency?(requests[k].kind, Date().timeIntervalSince(sentAt))
        }
    }

    /// Takes in a reply: pulled values into the variables, the sync label, acknowledgements.
    func apply(_ r: Request) throws {
        guard let reply = r.reply else { return }
        let i = r.server
        let expected: MessageKind
        switch r.kind {
        case .push: expected = .pushed
        case .pull: expected = .values
        case .done: expected = .goodbye
        case .register: expected = .registered
        case .hello: expected = .welcome
        default: expected = .pong
        }
        guard reply.header.kind == expected else {
            throw RemoteError.unexpectedReply(server: servers[i], what: r.what, got: "\(reply.header.kind)")
        }
        switch r.kind {
        case .push:
            // Acknowledgements repeat: a body identical to the last one decoded means the same thing.
            let pushed: Pushed?
            if let last = lastAcknowledgement, reply.body.withUnsafeBytes({ $0.elementsEqual(last.body) }) {
                pushed = last.pushed
            } else {
                pushed = try? reply.decode(Pushed.self)
                lastAcknowledgement = pushed.map { (reply.body.bytes, $0) }
            }
            if pushed?.outcome == .late { stats.lateGradients += 1 }
        case .pull:
            let vars = onServer[i]
            let size = settings.wireDType.size
            // Packed (one frame for several variables) or a frame each: a server packs only what fits this
            // worker's frame limit.
            if packedWith[i], vars.count > 1, reply.tensors.count == 1 {
                let total = vars.reduce(0) { $0 + $1.count * size }
                guard let frame = reply.tensors.first, frame.count == total else {
                    throw RemoteError.unexpectedReply(
                        server: servers[i], what: "pull (packed)",
                        got: "\(reply.tensors.count) frames of \(reply.tensors.reduce(0) { $0 + $1.count }) bytes for \(total)")
                }
                frame.withUnsafeBytes { all in
                    var offset = 0
                    for v in vars {
                        take(UnsafeRawBufferPointer(rebasing: all[offset..<offset + v.count * size]), into: v)
                        offset += v.count * size
                    }
                }
            } else {
                guard reply.tensors.count == vars.count else {
                    throw RemoteError.unexpectedReply(
                        server: servers[i], what: "pull", got: "\(reply.tensors.count) tensors for \(vars.count) variables")
                }
                for (v, frame) in zip(vars, reply.tensors) {
                    guard frame.count == v.count * size else {
                        throw RemoteError.unexpectedReply(server: servers[i], what: "pull of \(v.name)", got: "\(frame.count) bytes")
                    }
                    frame.withUnsafeBytes { take($0, into: v) }
                }
            }
            lastUpdates[i] = reply.header.step
            labels[i] = reply.header.step + 1
        default: break
        }
    }

    // MARK: - Joining and recovery

    /// A hello to server `i`: who this worker is, the job's size, and the settings every worker must share.
    func helloRequest(_ i: Int) -> Request {
        request(
            i, .hello, step: 0,
            body: Body.encode(
                Hello(
                    workerName: "worker \(settings.taskIndex) (pid \(getpid()), \(ProcessInfo.processInfo.hostName))",
                    numWorkers: settings.numWorkers, wireDType: settings.wireDType, scaling: settings.scaling,
                    packed: settings.packed ? true : nil, maxFrameBytes: settings.packed ? settings.maxFrameBytes : nil,
                    model: settings.model)),
            what: "answer hello")
    }

    /// Says hello to server `i` and registers this worker's variables there; retries while another process
    /// still holds this task index (a restarted worker whose predecessor is not yet forgotten).
    @discardableResult
    func join(_ i: Int, deadline: Date) throws -> Welcome {
        while true {
            var hello = [helloRequest(i)]
            send(hello[0])
            do {
                try awaitReplies(&hello, server: i)
            } catch RemoteError.refused(_, _, let e) where e.code == .indexTaken && Date() < deadline {
                logger.warning("task index still held by an earlier process; retrying", metadata: ["ps": "\(servers[i])"])
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            let welcome = try hello[0].reply!.decode(Welcome.self)
            guard (welcome.wireDType ?? .float32) == settings.wireDType else {
                throw RemoteError.unexpectedReply(
                    server: servers[i], what: "hello asking for \(settings.wireDType.rawValue) tensors",
                    got: "a welcome for \((welcome.wireDType ?? .float32).rawValue); this server does not negotiate the wire dtype")
            }
            if welcomes.count > i { welcomes[i] = welcome } else { welcomes.append(welcome) }
            packedWith[i] = settings.packed && welcome.packed == true
            labels[i] = welcome.resumeStep + 1
            try register(i, withValues: settings.registerValues, what: "register \(onServer[i].count) variables")
            return welcome
        }
    }

    /// Registers this worker's variables on server `i` (create-if-absent). With `withValues` the specs carry
    /// the worker's current values, which a server that lacks a variable takes (a restore, or a server that
    /// restarted without its checkpoint); otherwise it creates them from the seed as every worker would.
    func register(_ i: Int, withValues: Bool, what: String) throws {
        let specs = onServer[i].map { v -> VariableSpec in
            var spec = VariableSpec(v, seed: settings.seed)
            if withValues { spec.initializer = InitializerSpec(kind: "tensor", values: Array(v.value)) }
            return spec
        }
        var register = [request(i, .register, step: 0, body: Body.encode(Register(variables: specs)), what: what)]
        send(register[0])
        try awaitReplies(&register, server: i)
        try apply(register[0])
    }

    /// Reconnects to server `i` with exponential backoff until it answers hello, within the recovery timeout.
    /// `since` is when the server was last heard from: the recovery time counts from there.
    func recover(_ i: Int, because why: String, since: Date) throws {
        let started = Date()
        logger.warning(
            "lost ps \(servers[i]) (\(why)); reconnecting", metadata: ["recovery.timeout": "\(settings.recoveryTimeout)"])
        var backoff = 0.1
        var attempts = 0
        let previous = incarnations[i]
        while true {
            attempts += 1
            try transports[i].reconnect()
            incarnations[i] = nil
            var hello = [helloRequest(i)]
            send(hello[0])
            if let welcome = try waitBriefly(&hello, server: i, seconds: 1 + backoff) {
                let restarted = previous != nil && incarnations[i] != previous
                var lost: UInt64 = 0
                if restarted {
                    lost = lastUpdates[i] > welcome.updates ? lastUpdates[i] - welcome.updates : 0
                    stats.updatesLost += lost
                    try register(i, withValues: true, what: "register again after its restart")
                }
                if welcomes.count > i { welcomes[i] = welcome }
                let seconds = Date().timeIntervalSince(since)
                stats.recoveries += 1
                stats.recoverySeconds += seconds
                let text = String(
                    format: "recovered ps %@ %.2f s after it was last heard (%d attempts)%@", servers[i], seconds, attempts,
                    restarted
                        ? ": it restarted at update \(welcome.updates); \(lost) updates it had applied after its last checkpoint are lost"
                        : ": same server, connection restored")
                logger.warning("\(text)")
                onRecovery?(text)
                return
            }
            if Date().timeIntervalSince(started) > settings.recoveryTimeout {
                let hint =
                    previous == nil && settings.usesCurve
                    ? "; it never answered: with CURVE, a --curve-server-key that is not this server's public key looks like this"
                    : ""
                throw RemoteError.lost(server: servers[i], seconds: settings.recoveryTimeout, attempts: attempts, hint: hint)
            }
            logger.info(
                "ps \(servers[i]) not back yet", metadata: ["attempt": "\(attempts)", "next.seconds": "\(String(format: "%.1f", backoff))"])
            Thread.sleep(forTimeInterval: backoff)
            backoff = min(backoff * 2, 5)
        }
    }

    /// Waits up to `seconds` for the welcome; nil if none came (the server is not back yet).
    func waitBriefly(_ hello: inout [Request], server i: Int, seconds: Double) throws -> Welcome? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let refusal = transports[i].refusal { throw RemoteError.keyRefused(server: servers[i], reason: refusal) }
            guard let frames = try transports[i].receive(timeout: 0.1) else { continue }
            stats.bytesReceived += frames.reduce(0) { $0 + $1.count }
            guard let reply = try? Envelope(frames: frames[...]), reply.header.requestID == hello[0].id else { continue }
            if reply.header.kind == .error {
                let e = try reply.decode(ErrorBody.self)
                if e.code == .indexTaken { return nil }
                throw RemoteError.refused(server: servers[i], what: "hello after reconnecting", error: e)
            }
            incarnations[i] = reply.header.incarnation
            return try reply.decode(Welcome.self)
        }
        return nil
    }
}

