import Exchange
import Foundation
import Logging
import Transport
import VariableScopes
import Wire

/// Pushes gradients to and pulls variables from parameter servers, over any `ClientTransport`: placement,
/// fan-out to every server at once, prefetch, and recovery.
///
/// Each step sends, to every server at once, the push of step k's gradients and the pull for step k + 1,
/// then waits for both replies from each (`GradientStager` owns the memory a push travels in).
///
/// Recovery, bounded: a server that stops answering on this connection (no reply and no pong for
/// `lostAfter`), comes back with a new incarnation, or no longer knows this connection (`wrongIdentity`:
/// libzmq reconnected after a pause) is recovered without recursion: reconnect with exponential backoff,
/// hello (the same incarnation proves it is the same process), register again after a restart
/// (create-if-absent), then re-send the unanswered requests with their original ids, so a push is applied
/// once. One deadline (`recoveryTimeout`) covers every recovery of one round of requests, so a server that
/// keeps restarting ends the worker (exit 138) instead of looping.
///
/// Liveness is separate: a `Heartbeat` thread tells the servers this process is alive whatever it is doing.
public final class RemoteExchange: ParameterExchange {
    public let servers: [String]
    let settings: RemoteSettings
    let logger: Logger
    let connections: [ServerConnection]
    /// This process's incarnation: servers tell a re-sent request from a new process by it.
    public let incarnation: UInt64
    var placement: Placement?
    /// Variables on each server, in a fixed order.
    var onServer: [[Variable]] = [] {
        didSet { namesBodies = onServer.map { vars in Body.encode(Names(names: vars.map(\.name))) } }
    }
    /// The body naming each server's variables, the same in every push and pull: encoded once.
    var namesBodies: [[UInt8]] = []
    var nextRequest: UInt64 = 1
    /// When the current round's requests went out (monotonic).
    var sentAt = MonotonicClock.now()
    public private(set) var stats = TrafficStats()
    /// The welcome of each server (mode, optimizer).
    public var welcomes: [Welcome] { connections.compactMap(\.welcome) }
    /// Called with each recovery's description (metrics, logs).
    public var onRecovery: ((String) -> Void)?
    /// Called with each reply's latency in seconds, by request kind (metrics).
    public var onLatency: ((MessageKind, Double) -> Void)?
    let stager: GradientStager
    /// The last push acknowledgement decoded, by its bytes.
    var lastAcknowledgement: (body: [UInt8], pushed: Pushed)?
    /// Pushes refused in a row.
    var refusedInARow = 0
    /// With prefetch: the round the last `exchange` sent, answered at the next one.
    var inFlight: [Request]?
    let heartbeat: Heartbeat?
    /// Whether the worker was told to stop (a signal): then a server that stops answering is not recovered
    /// (after Ctrl-C the servers are stopping too) and the goodbye is not waited for long.
    public var stopRequested: @Sendable () -> Bool = { false }

    /// - Parameters:
    ///   - servers: `host:port` of each parameter server, in the same order on every worker.
    ///   - transports: one connection per server, in the same order.
    ///   - heartbeatTransports: makes the heartbeat thread's own connections (one per server, same order);
    ///     nil sends no heartbeats (servers then see only requests).
    public init(
        servers: [String], transports: [ClientTransport], settings: RemoteSettings, logger: Logger,
        heartbeatTransports: (@Sendable () throws -> [ClientTransport])? = nil
    ) throws {
        guard !servers.isEmpty, servers.count == transports.count else {
            throw RemoteError.badEndpoint("\(servers.count) servers for \(transports.count) connections")
        }
        self.servers = servers
        self.settings = settings
        self.logger = logger
        connections = zip(servers, transports).enumerated().map { i, pair in
            ServerConnection(endpoint: pair.0, position: i, count: servers.count, transport: pair.1)
        }
        stager = GradientStager(dtype: settings.wireDType)
        let incarnation = UInt64.random(in: 1...UInt64.max)
        self.incarnation = incarnation
        heartbeat = heartbeatTransports.map { make in
            Heartbeat(
                servers: servers.count, taskIndex: UInt32(settings.taskIndex), incarnation: incarnation, interval: settings.heartbeat,
                logger: logger, makeTransports: make)
        }
    }

    deinit { heartbeat?.stop() }

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
        for c in connections {
            let welcome = try join(c, deadline: MonotonicClock.now() + settings.timeout)
            resume = max(resume, welcome.resumeStep)
        }
        heartbeat?.start()
        // Steps are Ints on this side: a server's step past them is a lie, not a step.
        guard resume < UInt64(Int.max / 2) else {
            throw RemoteError.unexpectedReply(server: servers[0], what: "hello", got: "a welcome resuming at step \(resume)")
        }
        try roundTrip(connections.map { pullRequest($0.position, step: Int(resume) + 1) })
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
        for c in connections {
            let frames = stager.frames(
                onServer[c.position], server: c.position, packed: c.packed, maxFrameBytes: c.welcome?.maxFrameBytes ?? Int.max,
                copy: prefetching)
            let label = c.welcome?.mode == .sync ? c.label : UInt64(step)
            requests.append(
                request(c.position, .push, step: label, body: namesBodies[c.position], tensors: frames, what: "acknowledge the gradients of step \(step)"))
        }
        for c in connections { requests.append(pullRequest(c.position, step: step + 1)) }
        if prefetching {
            for r in requests { send(r) }
            sentAt = MonotonicClock.now()
            inFlight = requests
            stats.prefetchedSteps += 1
        } else {
            try roundTrip(requests)
        }
        stats.steps += 1
    }

    public func finish(variables: [Variable]) throws {
        if let previous = inFlight {
            inFlight = nil
            try complete(previous)
        }
        defer { heartbeat?.stop() }
        do {
            try roundTrip(
                connections.map {
                    request($0.position, .done, step: 0, body: Body.encode(Names(names: [])), what: "acknowledge that this worker is done")
                })
        } catch RemoteError.stoppedWhileAway(let server) {
            // Stopping on a signal with a server gone: the others were told; that one will count us lost.
            logger.warning("ps \(server) did not acknowledge that this worker is done; stopping anyway")
        }
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

    func request(_ server: Int, _ kind: MessageKind, step: UInt64, body: [UInt8], tensors: [Frame] = [], what: String) -> Request {
        let id = nextRequest
        nextRequest += 1
        return Request(server: server, kind: kind, id: id, step: step, body: body, tensors: tensors, what: what)
    }

    func pullRequest(_ i: Int, step: Int) -> Request {
        request(i, .pull, step: UInt64(step), body: namesBodies[i], what: "send the variables for step \(step)")
    }

    func send(_ r: Request) {
        let header = Header(kind: r.kind, workerID: UInt32(settings.taskIndex), requestID: r.id, step: r.step, incarnation: incarnation)
        stats.bytesSent += connections[r.server].send(Envelope.frames(header, body: r.body, tensors: r.tensors), logger: logger)
    }

    /// Sends every request, then waits for every reply, recovering lost servers on the way; applies the replies.
    func roundTrip(_ requests: [Request]) throws {
        for r in requests { send(r) }
        sentAt = MonotonicClock.now()
        try complete(requests)
    }

    /// Waits for the replies to requests already sent, recovering lost servers, and applies them.
    func complete(_ requests: [Request]) throws {
        var byServer: [Int: [Request]] = [:]
        for r in requests { byServer[r.server, default: []].append(r) }
        for c in connections {
            guard var pending = byServer[c.position] else { continue }
            try awaitReplies(&pending, on: c)
            for r in pending { try apply(r) }
        }
    }

    /// Waits for the replies to `requests` (all to `c`). A live server gets `timeout` to answer; a silent,
    /// restarted or forgetful one is recovered, and one deadline covers all of this wait's recoveries.
    func awaitReplies(_ requests: inout [Request], on c: ServerConnection) throws {
        var lastHeard = MonotonicClock.now()
        var lastPing = lastHeard
        var deadline = lastHeard + settings.timeout
        var recoveryDeadline: Double?
        var recoveries = 0
        // Silence is judged after the time this round's bytes take to cross: a connection delivers a message
        // only whole, and a 235 MB values reply (with the pongs queued behind it) takes seconds to arrive.
        let lostAfter = settings.lostAfter + Double(requests.reduce(0) { $0 + bytesCrossing($1) }) / Self.slowestBytesPerSecond
        while let open = requests.firstIndex(where: { $0.reply == nil }) {
            let now = MonotonicClock.now()
            var trouble: (why: String, reconnect: Bool)?
            if !c.everHeard {
                // A server never reached is not "lost": there is nothing to reconnect to. It gets --timeout to
                // answer, and then the worker says that nothing answered.
                if now > deadline {
                    let host = Self.host(of: c.endpoint)
                    let unresolved = host.map { !Self.resolves($0) } ?? false
                    throw RemoteError.noAnswer(
                        server: c.endpoint, position: c.position + 1, of: c.count, seconds: settings.timeout,
                        hint: unresolved
                            ? "; the name \(host ?? "") does not resolve to an address (DNS or /etc/hosts): check the host in --ps"
                            : settings.usesCurve ? "; with CURVE, a --curve-server-key that is not this server's public key looks like this" : "")
                }
            } else if now - lastHeard > lostAfter {
                let beating = (heartbeat?.lastHeard(c.position) ?? -Double.infinity) > lastHeard
                trouble = (
                    "no word on this connection for \(String(format: "%.1f", lostAfter)) s"
                        + (beating ? " (it answers heartbeats: the connection was replaced)" : ""), true
                )
            } else if now > deadline {
                throw RemoteError.timeout(
                    server: c.endpoint, position: c.position + 1, of: c.count, waitingFor: requests[open].what,
                    seconds: settings.timeout, answering: now - lastHeard <= 2 * settings.heartbeat + 0.5)
            }
            if trouble == nil {
                if c.everHeard, now - lastHeard >= settings.heartbeat, now - lastPing >= settings.heartbeat {
                    // Keeps this connection's silence meaningful while a reply is slow (a sync step waiting).
                    send(request(c.position, .ping, step: 0, body: Body.encode(Names(names: [])), what: "answer a ping"))
                    lastPing = now
                }
                if let reply = try c.receive(timeout: min(0.25, settings.heartbeat / 2), bytes: &stats.bytesReceived) {
                    if let known = c.incarnation, known != reply.header.incarnation {
                        trouble = ("it restarted (new incarnation)", true)
                    } else {
                        c.incarnation = reply.header.incarnation
                        lastHeard = MonotonicClock.now()
                        if let k = requests.firstIndex(where: { $0.id == reply.header.requestID && $0.reply == nil }) {
                            if reply.header.kind == .error {
                                let e = try reply.decode(ErrorBody.self)
                                if e.code == .wrongIdentity && e.canRetry {
                                    trouble = ("it no longer knows this connection (\(e.message))", false)
                                } else if requests[k].kind == .push && e.code == .nonFinite && e.canRetry {
                                    // Skipped and counted; too many in a row end the worker.
                                    try refusedPush(e, server: c.endpoint)
                                    requests[k].reply = reply
                                } else {
                                    throw RemoteError.refused(server: c.endpoint, what: requests[k].what, error: e)
                                }
                            } else {
                                requests[k].reply = reply
                                onLatency?(requests[k].kind, MonotonicClock.now() - sentAt)
                            }
                        } else if reply.header.kind == .error, let e = try? reply.decode(ErrorBody.self), e.code == .wrongIdentity {
                            // A ping (or a late request) refused: this connection is no longer bound.
                            trouble = ("it no longer knows this connection (\(e.message))", false)
                        }
                    }
                }
            }
            if let (why, reconnect) = trouble {
                if stopRequested() { throw RemoteError.stoppedWhileAway(server: c.endpoint) }
                let limit = recoveryDeadline ?? now + settings.recoveryTimeout
                recoveryDeadline = limit
                try recover(c, because: why, reconnect: reconnect, since: lastHeard, until: limit, recoveries: recoveries)
                recoveries += 1
                for r in requests where r.reply == nil { send(r) }
                lastHeard = MonotonicClock.now()
                lastPing = lastHeard
                deadline = lastHeard + settings.timeout
            }
        }
    }

    /// The host of an endpoint ("tcp://h:p", "h:p", "[::1]:p"), nil when it has none.
    static func host(of endpoint: String) -> String? {
        var s = Substring(endpoint)
        if let r = s.range(of: "://") { s = s[r.upperBound...] }
        guard let colon = s.lastIndex(of: ":") else { return nil }
        let h = s[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return h.isEmpty || h == "*" ? nil : h
    }

    /// Whether `host` resolves to any address (an IP literal always does).
    static func resolves(_ host: String) -> Bool {
        var result: UnsafeMutablePointer<addrinfo>?
        defer { if let result { freeaddrinfo(result) } }
        return getaddrinfo(host, nil, nil, &result) == 0 && result != nil
    }

    /// The slowest rate at which a live server's messages are assumed to cross (400 Mb/s): the allowance for a
    /// round's bytes before its silence counts.
    static let slowestBytesPerSecond = 50e6

    /// The bytes a request and its reply carry: its tensors, and for a pull the values it asks for.
    func bytesCrossing(_ r: Request) -> Int {
        let sent = r.tensors.reduce(0) { $0 + $1.count }
        guard r.kind == .pull else { return sent }
        return sent + onServer[r.server].reduce(0) { $0 + $1.count * settings.wireDType.size }
    }

    /// Counts a refused push; past `maxRefusedPushes` in a row, gives up.
    func refusedPush(_ e: ErrorBody, server: String) throws {
        stats.refusedPushes += 1
        refusedInARow += 1
        logger.warning("push refused and skipped", metadata: ["ps": "\(server)", "in.a.row": "\(refusedInARow)", "error": "\(e.message)"])
        if refusedInARow >= settings.maxRefusedPushes {
            throw RemoteError.refusedPushes(server: server, count: refusedInARow, last: e)
        }
    }

    /// Takes in a reply: pulled values into the variables, the sync label, acknowledgements.
    func apply(_ r: Request) throws {
        guard let reply = r.reply, reply.header.kind != .error else { return }
        let c = connections[r.server]
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
            throw RemoteError.unexpectedReply(server: c.endpoint, what: r.what, got: "\(reply.header.kind)")
        }
        switch r.kind {
        case .push:
            refusedInARow = 0
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
            let vars = onServer[r.server]
            // Values a server sends are trained on: sizes and finiteness are checked before any is taken.
            if let wrong = stager.takeValues(reply.tensors, into: vars) {
                throw RemoteError.unexpectedReply(server: c.endpoint, what: "pull", got: wrong)
            }
            if !reply.body.withUnsafeBytes({ $0.elementsEqual(c.lastValuesBody) }) {
                c.lastValuesBody = reply.body.bytes
                if let body = try? reply.decode(ValuesBody.self), let n = body.droppedSteps, n > 0 {
                    stats.droppedSyncSteps += n
                    logger.warning(
                        "ps \(c.endpoint) dropped \(n) sync step(s) this worker contributed to: the averaged gradient was not finite")
                }
            }
            c.lastUpdates = reply.header.step
            c.label = reply.header.step &+ 1
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
                    packed: settings.packed ? true : nil, maxFrameBytes: settings.maxFrameBytes,
                    model: settings.model, partitioning: settings.partitioning,
                    placement: "\(i + 1) of \(connections.count)")),
            what: "answer hello")
    }

    /// Says hello to `c` and registers this worker's variables there; retries while another process still
    /// holds this task index (a restarted worker whose predecessor is not yet forgotten), until `deadline`.
    @discardableResult
    func join(_ c: ServerConnection, deadline: Double) throws -> Welcome {
        while true {
            var hello = [helloRequest(c.position)]
            send(hello[0])
            do {
                try awaitReplies(&hello, on: c)
            } catch RemoteError.refused(_, _, let e) where e.code == .indexDone {
                throw RemoteError.alreadyDone(server: c.endpoint, message: e.message)
            } catch RemoteError.refused(_, _, let e) where e.code == .indexTaken && MonotonicClock.now() < deadline {
                logger.warning("task index still held by an earlier process; retrying", metadata: ["ps": "\(c.endpoint)"])
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            guard let reply = hello[0].reply else { continue }
            let welcome = try reply.decode(Welcome.self)
            try accept(welcome, from: c)
            var register = [registerRequest(c.position, withValues: settings.registerValues, what: "register \(onServer[c.position].count) variables")]
            send(register[0])
            try awaitReplies(&register, on: c)
            try apply(register[0])
            return welcome
        }
    }

    /// Checks a welcome's numbers and settings and takes it.
    func accept(_ welcome: Welcome, from c: ServerConnection) throws {
        guard (welcome.wireDType ?? .float32) == settings.wireDType else {
            throw RemoteError.unexpectedReply(
                server: c.endpoint, what: "hello asking for \(settings.wireDType.rawValue) tensors",
                got: "a welcome for \((welcome.wireDType ?? .float32).rawValue); this server does not negotiate the wire dtype")
        }
        guard welcome.resumeStep < UInt64(Int.max / 2), welcome.updates < UInt64.max / 2 else {
            throw RemoteError.unexpectedReply(
                server: c.endpoint, what: "hello", got: "a welcome at step \(welcome.resumeStep), update \(welcome.updates): past any real step")
        }
        c.welcome = welcome
        c.packed = settings.packed && welcome.packed == true
        c.label = welcome.resumeStep + 1
    }

    /// Registers this worker's variables (create-if-absent). With `withValues` the register carries the
    /// worker's current values as binary tensor frames, which a server that lacks a variable takes (a restore,
    /// or a server that restarted without its checkpoint); otherwise it creates them from the seed as every
    /// worker would (a variable made from an explicit tensor always carries it).
    func registerRequest(_ i: Int, withValues: Bool, what: String) -> Request {
        var valued: [Variable] = []
        let specs = onServer[i].map { v -> VariableSpec in
            var spec = VariableSpec(v, seed: settings.seed)
            if withValues { spec.initializer = InitializerSpec(kind: InitializerSpec.tensorKind) }
            if spec.initializer.kind == InitializerSpec.tensorKind { valued.append(v) }
            return spec
        }
        let limit = connections[i].welcome?.maxFrameBytes ?? settings.maxFrameBytes
        return request(
            i, .register, step: 0, body: Body.encode(Register(variables: specs)),
            tensors: GradientStager.valueFrames(valued, maxFrameBytes: limit), what: what)
    }

    /// Brings `c` back: (re)connect with exponential backoff until it answers hello, register again if it
    /// restarted, all before `limit`. No recursion: a failure within is another attempt.
    /// - Parameters:
    ///   - reconnect: drop this connection and make a new one (a silent or restarted server); otherwise the
    ///     hello goes on the current one (it only needs binding again).
    ///   - since: when the server was last heard from: the recovery time counts from there.
    ///   - recoveries: recoveries already made in this wait (for the message when time runs out).
    func recover(_ c: ServerConnection, because why: String, reconnect: Bool, since: Double, until limit: Double, recoveries: Int) throws {
        logger.warning("lost ps \(c.endpoint) (\(why)); reconnecting", metadata: ["recovery.timeout": "\(settings.recoveryTimeout)"])
        var backoff = 0.1
        var attempts = 0
        var answered = false
        let previous = c.incarnation
        while true {
            let now = MonotonicClock.now()
            guard now < limit else {
                if answered {
                    throw RemoteError.recoveryTimedOut(
                        server: c.endpoint, seconds: settings.recoveryTimeout, recoveries: recoveries,
                        cause: "it answered hello but its incarnation changed again before registration completed")
                }
                if recoveries > 0 {
                    throw RemoteError.recoveryTimedOut(server: c.endpoint, seconds: settings.recoveryTimeout, recoveries: recoveries, cause: why)
                }
                let hint =
                    previous == nil && settings.usesCurve
                    ? "; it never answered: with CURVE, a --curve-server-key that is not this server's public key looks like this" : ""
                throw RemoteError.lost(server: c.endpoint, seconds: settings.recoveryTimeout, attempts: attempts, hint: hint)
            }
            attempts += 1
            if reconnect || attempts > 1 { try c.transport.reconnect() }
            let hello = helloRequest(c.position)
            send(hello)
            if let reply = try waitBriefly(for: hello, on: c, seconds: min(1 + backoff, limit - now)) {
                answered = true
                let welcome = try reply.decode(Welcome.self)
                let restarted = previous != nil && reply.header.incarnation != previous
                if restarted {
                    // Its variables are back from its checkpoint, or (without one) from the values sent here.
                    let register = registerRequest(c.position, withValues: true, what: "register again after its restart")
                    send(register)
                    guard let registered = try waitBriefly(for: register, on: c, seconds: max(0, limit - MonotonicClock.now())),
                        registered.header.incarnation == reply.header.incarnation, registered.header.kind == .registered
                    else { continue }
                }
                try accept(welcome, from: c)
                c.incarnation = reply.header.incarnation
                var lost: UInt64 = 0
                if restarted {
                    lost = c.lastUpdates > welcome.updates ? c.lastUpdates - welcome.updates : 0
                    stats.updatesLost += lost
                } else if !reconnect {
                    stats.rebinds += 1
                }
                let seconds = MonotonicClock.now() - since
                stats.recoveries += 1
                stats.recoverySeconds += seconds
                let text = String(
                    format: "recovered ps %@ %.2f s after it was last heard (%d attempts)%@", c.endpoint, seconds, attempts,
                    restarted
                        ? ": it restarted at update \(welcome.updates); \(lost) updates it had applied after its last checkpoint are lost"
                        : reconnect ? ": same server, connection restored" : ": same server, this connection bound again")
                logger.warning("\(text)")
                onRecovery?(text)
                return
            }
            logger.info("ps \(c.endpoint) not back yet", metadata: ["attempt": "\(attempts)", "next.seconds": "\(String(format: "%.1f", backoff))"])
            Thread.sleep(forTimeInterval: max(0, min(backoff, limit - MonotonicClock.now())))
            backoff = min(backoff * 2, 5)
        }
    }

    /// Waits up to `seconds` for the reply to `r` on `c`, ignoring anything else (replies to earlier requests);
    /// nil if none came, or the server is not ready for this worker yet (it no longer knows this connection).
    /// A hello refused with `indexTaken` is final: this process held the index, so another process took it
    /// over while this one was away (paused past the takeover bound). Waiting out `--recovery-timeout` and
    /// exiting as retryable would ask to be restarted into a job that has replaced it.
    func waitBriefly(for r: Request, on c: ServerConnection, seconds: Double) throws -> Envelope? {
        let deadline = MonotonicClock.now() + max(0, seconds)
        while MonotonicClock.now() < deadline {
            guard let reply = try c.receive(timeout: 0.1, bytes: &stats.bytesReceived), reply.header.requestID == r.id else { continue }
            if reply.header.kind == .error {
                let e = try reply.decode(ErrorBody.self)
                if e.code == .indexDone { throw RemoteError.alreadyDone(server: c.endpoint, message: e.message) }
                if e.code == .indexTaken && r.kind == .hello {
                    throw RemoteError.refused(
                        server: c.endpoint,
                        what: "this worker's hello after it was away (another process took its task index meanwhile; this one is superseded)",
                        error: e)
                }
                if e.code == .indexTaken || e.code == .wrongIdentity { return nil }
                throw RemoteError.refused(server: c.endpoint, what: "\(r.kind) after reconnecting", error: e)
            }
            return reply
        }
        return nil
    }
}
