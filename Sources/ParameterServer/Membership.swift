import Wire

/// Who holds each task index of the job, and whether it is alive: the server's membership rules as a value
/// type with no socket or clock of its own. Hello, request, heartbeat, done and tick are its transitions;
/// each returns a decision (admit, refuse with a code, or a change to report), so the rules can be tested as
/// a table.
///
/// - An index is absent until its first hello, then active (bound to an incarnation, a connection and,
///   with admission, a CURVE key), done (it said so) or lost (silent past `workerTimeout`).
/// - Liveness counts silence of any word from the index's process: its heartbeats come from a connection
///   of their own every second whatever the worker is doing, so a long step, a slow reply or a reconnect is
///   never silence; a paused or dead process is.
/// - The same process (same incarnation, same key) may say hello again on a new connection at any time
///   (libzmq reconnected after a pause or a network blip): it is rebound and goes on.
/// - Another process may take an index over only once its holder has been silent for `takeoverAfter`.
/// - A done index stays done: a new process for it is refused with `indexDone` (its training is complete,
///   and training it again would count its steps twice); the worker says so and exits 0.
public struct Membership: Sendable {
    public enum Status: Sendable, Equatable { case active, done, lost }

    /// What the server knows of one index's holder.
    public struct Member: Sendable, Equatable {
        public var name: String
        public var incarnation: UInt64
        public var peer: Peer?
        public var key: String?
        public var lastSeen: Double
        public var status: Status
    }

    /// What a hello led to.
    public enum HelloOutcome: Sendable, Equatable {
        /// A new index.
        case joined
        /// The same process on a new connection (or again on the same one).
        case reconnected
        /// A new process for an index whose holder was lost, silent, or restored from a checkpoint.
        case rejoined(previous: String)
    }

    /// A refusal: the code and the message sent back.
    public struct Refusal: Error, Sendable, Equatable {
        public let code: ErrorBody.Code
        public let message: String
    }

    /// A change found by `tick`, for logs and counters.
    public enum Change: Sendable, Equatable {
        case lost(index: UInt32, name: String, silentFor: Double)
        case neverJoined(index: UInt32)
    }

    public private(set) var members: [UInt32: Member] = [:]
    public private(set) var numWorkers: Int?
    /// When the first worker said hello: indices not seen by `workerTimeout` after it are declared lost.
    var firstHelloAt: Double?
    let server: String
    let workerTimeout: Double
    let takeoverAfter: Double

    public init(server: String, workerTimeout: Double, takeoverAfter: Double, numWorkers: Int? = nil) {
        self.server = server
        self.workerTimeout = workerTimeout
        self.takeoverAfter = takeoverAfter
        self.numWorkers = numWorkers
    }

    /// Members of a previous run (from a checkpoint): they count from `now`, and get `workerTimeout` to come back.
    public mutating func restore(_ saved: [(index: UInt32, incarnation: UInt64, done: Bool)], numWorkers n: Int?, now: Double) {
        if numWorkers == nil { numWorkers = n }
        for w in saved {
            members[w.index] = Member(
                name: "worker \(w.index)", incarnation: w.incarnation, peer: nil, key: nil, lastSeen: now,
                status: w.done ? .done : .active)
        }
        if !saved.isEmpty { firstHelloAt = now }
    }

    public subscript(index: UInt32) -> Member? { members[index] }

    // MARK: - Transitions

    /// A hello from `peer` for `index`, by process `incarnation`, in a job of `jobSize` workers.
    /// - Throws: `Refusal` (`workerCount`, `indexTaken`, `indexDone`, `wrongIdentity`).
    public mutating func hello(
        index: UInt32, incarnation: UInt64, name: String, jobSize: Int, peer: Peer, now: Double
    ) throws(Refusal) -> HelloOutcome {
        if let n = numWorkers, n != jobSize {
            throw Refusal(
                code: .workerCount,
                message:
                    "ps \(server): \(name) says there are \(jobSize) workers, but this job has \(n); start every worker with the same --num-workers"
            )
        }
        let outcome: HelloOutcome
        if var m = members[index], m.incarnation != 0 {
            if m.incarnation == incarnation {
                // The same process on a new connection: rebound, provided it holds the same key.
                if let key = m.key, key != peer.key {
                    throw Refusal(
                        code: .wrongIdentity,
                        message: "ps \(server): worker \(index) is bound to another CURVE key; this hello from \(peer) is refused")
                }
                m.peer = peer
                m.key = peer.key
                m.lastSeen = now
                if m.status == .lost { m.status = .active }
                members[index] = m
                outcome = .reconnected
            } else {
                if m.status == .done {
                    throw Refusal(
                        code: .indexDone,
                        message:
                            "ps \(server): task index \(index) finished its training (\(m.name) said done); \(name) has nothing left to do"
                    )
                }
                if m.status == .active, m.peer != nil, m.peer?.id != peer.id, now - m.lastSeen < takeoverAfter {
                    throw Refusal(
                        code: .indexTaken,
                        message:
                            "ps \(server): task index \(index) is held by \(m.name), which is alive; \(name) is refused. Give each worker its own --task-index (a process that was paused and finds its index held has been replaced: it is not needed)"
                    )
                }
                outcome = .rejoined(previous: m.name)
                members[index] = Member(
                    name: name, incarnation: incarnation, peer: peer, key: peer.key, lastSeen: now, status: .active)
            }
        } else {
            members[index] = Member(name: name, incarnation: incarnation, peer: peer, key: peer.key, lastSeen: now, status: .active)
            outcome = .joined
        }
        numWorkers = jobSize
        if firstHelloAt == nil { firstHelloAt = now }
        return outcome
    }

    /// Any other request: it must come from the connection (and key) the index said hello on, from the same
    /// process. A lost worker that speaks again is active again.
    /// - Throws: `Refusal` (`protocolOrder` before hello, `wrongIdentity` from elsewhere).
    public mutating func request(index: UInt32, incarnation: UInt64, peer: Peer, kind: MessageKind, now: Double) throws(Refusal)
        -> Member
    {
        guard var m = members[index], m.incarnation != 0 else {
            throw Refusal(
                code: .protocolOrder,
                message:
                    "ps \(server): worker \(index) has not said hello (workers: \(numWorkers.map(String.init) ?? "none yet")); send hello first")
        }
        guard m.peer?.id == peer.id, m.incarnation == incarnation else {
            throw Refusal(
                code: .wrongIdentity,
                message: m.incarnation == incarnation
                    ? "ps \(server): worker \(index) said hello on another connection; say hello again on this one to go on (this \(kind) from \(peer) is refused)"
                    : "ps \(server): task index \(index) is held by another process (\(m.name)); this \(kind) from \(peer) is refused")
        }
        m.lastSeen = now
        if m.status == .lost { m.status = .active }
        members[index] = m
        return m
    }

    /// A heartbeat: from any connection of the index's process (same incarnation, and same key where the
    /// index is bound to one). It only says the process is alive.
    /// - Throws: `Refusal` (`protocolOrder` before hello, `wrongIdentity` from another process or key).
    public mutating func heartbeat(index: UInt32, incarnation: UInt64, peer: Peer, now: Double) throws(Refusal) {
        guard var m = members[index], m.incarnation != 0 else {
            throw Refusal(code: .protocolOrder, message: "ps \(server): worker \(index) has not said hello; a heartbeat comes after it")
        }
        guard m.incarnation == incarnation, m.key == nil || m.key == peer.key else {
            throw Refusal(
                code: .wrongIdentity, message: "ps \(server): a heartbeat for task index \(index) from a process that does not hold it")
        }
        m.lastSeen = now
        if m.status == .lost { m.status = .active }
        members[index] = m
    }

    /// The index said it is done.
    public mutating func done(index: UInt32) {
        members[index]?.status = .done
    }

    /// The server itself did not run for `seconds` (SIGSTOP, a starved or swapped process, a long stall): no
    /// word could be heard then, and the heartbeats sent meanwhile are still queued unread, so that time is
    /// nobody's silence. Active members' clocks and the join deadline move on by it.
    public mutating func excuse(_ seconds: Double) {
        guard seconds > 0, seconds.isFinite else { return }
        for (index, m) in members where m.status == .active { members[index]?.lastSeen = m.lastSeen + seconds }
        firstHelloAt = firstHelloAt.map { $0 + seconds }
    }

    /// Declares silent members lost, and indices never seen `workerTimeout` after the first hello.
    public mutating func tick(now: Double) -> [Change] {
        guard let n = numWorkers, let first = firstHelloAt else { return [] }
        var changes: [Change] = []
        for index in 0..<UInt32(n) {
            if var m = members[index] {
                if m.status == .active && now - m.lastSeen > workerTimeout {
                    m.status = .lost
                    members[index] = m
                    changes.append(.lost(index: index, name: m.name, silentFor: now - m.lastSeen))
                }
            } else if now - first > workerTimeout {
                members[index] = Member(name: "worker \(index)", incarnation: 0, peer: nil, key: nil, lastSeen: now, status: .lost)
                changes.append(.neverJoined(index: index))
            }
        }
        return changes
    }

    // MARK: - Reading

    /// Whether every worker of the job is done or lost.
    public var allFinished: Bool {
        guard let n = numWorkers else { return false }
        return (0..<UInt32(n)).allSatisfy { members[$0].map { $0.status != .active } ?? false }
    }

    public func isActive(_ index: UInt32) -> Bool { members[index].map { $0.status == .active } ?? true }

    /// Members by status.
    public var counts: (active: Int, done: Int, lost: Int) {
        var c = (active: 0, done: 0, lost: 0)
        for m in members.values {
            switch m.status {
            case .active: c.active += 1
            case .done: c.done += 1
            case .lost: c.lost += 1
            }
        }
        return c
    }
}
