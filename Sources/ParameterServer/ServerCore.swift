import Foundation
import Logging
import Optimizers
import Wire

/// What the server's rules ask the outside world to do.
public enum Effect: Sendable {
    /// Send these frames to this peer (a reply).
    case send([Frame], to: Peer)
    /// Write a checkpoint of `snapshot()` now.
    case checkpoint(reason: String)
    /// Stop serving: write the final checkpoint and exit.
    case exit(reason: String)
}

/// A parameter server's rules (Li et al., OSDI 2014) as a state machine: requests and clock ticks in,
/// replies and effects out. It owns the variables placed on it and their optimizer state, and has no
/// socket, clock or file of its own: `ServerLoop` connects it to a transport, a clock and a checkpoint
/// directory, and tests drive it directly.
///
/// The concerns live apart and meet here:
/// - `Membership`: who holds each task index, identity across reconnects, liveness (heartbeats), done.
/// - `RequestDecoder` and `ReplyEncoder`: frames to typed requests and typed replies to frames.
/// - `VariableStore`: registration and the whole-or-nothing update.
/// - `ConsistencyPolicy`: when a push is applied and a pull answered (`SyncBarrier`, `AsyncStaleness`).
///
/// A push is applied at most once per (incarnation, request id), and a re-sent one gets the original's
/// acknowledgement. Every number from the wire is checked against `limits` before use; a malformed
/// request gets an `.error` reply naming the problem (and its request id when the header could be read),
/// and the server keeps serving everyone else.
public final class ServerCore {
    public let config: ServerConfig
    /// Random per start; workers notice a restarted server by it.
    public let incarnation: UInt64
    let logger: Logger

    public private(set) var membership: Membership
    let store: VariableStore
    let policy: ConsistencyPolicy
    let decoder: RequestDecoder
    let encoder: ReplyEncoder
    /// Per task index: dedupe records, steps, wire settings.
    var progress: [UInt32: WorkerProgress] = [:]
    /// The job's data scaling, fixed by the first hello that names one (recorded in checkpoints).
    public private(set) var scaling: String?
    /// How the job partitions its variables (`Hello.partitioning`), fixed by the first hello (recorded in
    /// checkpoints): a worker that partitions otherwise would name parts this server does not hold.
    public private(set) var partitioning: String?
    /// Where this server stands in the workers' `--ps` lists (`Hello.placement`), fixed by the first hello that
    /// names it (recorded in checkpoints).
    public private(set) var placement: String?
    /// Warnings a peer can cause, bounded per kind (`LogBudget`); `lastNow` is the time of the event being handled.
    var logBudget = LogBudget()
    var lastNow = 0.0
    /// The longest placement a hello may carry ("4096 of 4096" is 12 bytes).
    static let maxPlacementBytes = 32
    /// The longest partitioning text a hello may carry (a `--partitioner` value is at most 128 bytes).
    static let maxPartitioningBytes = 256
    /// The smallest frame limit a worker may claim: smaller ones would cut a reply into a frame per element.
    static let minFrameBytes = 1024
    /// The job's model description (`Hello.model`), fixed by the first hello that gives one; recorded in
    /// checkpoints for `forecast --restore`.
    public private(set) var model: String?
    /// Updates applied in all.
    public private(set) var updates: UInt64 = 0
    /// Pulls waiting for their step.
    var deferred: [(peer: Peer, header: Header, names: [String])] = []
    /// Peers that stopped reading their replies: ignored from now on.
    var shunned: Set<[UInt8]> = []
    var lastCheckpointAt: Double
    var updatesAtLastCheckpoint: UInt64 = 0
    var exiting = false
    public internal(set) var counters = ServerCounters()
    /// Staleness of recent pushes (updates applied between the worker's pull and its push), for metrics;
    /// drained by `drainStaleness()`, at most 4,096 kept.
    var stalenessSamples: [UInt64] = []

    /// - Parameters:
    ///   - restored: the state of a checkpoint to resume from.
    ///   - now: the clock's current reading (seconds).
    public init(config: ServerConfig, incarnation: UInt64, restored: ServerState? = nil, now: Double, logger: Logger) {
        self.config = config
        self.incarnation = incarnation
        self.logger = logger
        lastCheckpointAt = now
        store = VariableStore(server: config.name, limits: config.limits, restored: restored?.variables ?? [])
        switch config.mode {
        case .sync: policy = SyncBarrier(backupWorkers: config.backupWorkers, step: restored?.syncStep ?? 0)
        case .async: policy = AsyncStaleness(staleness: config.staleness)
        }
        decoder = RequestDecoder(server: config.name, limits: config.limits)
        encoder = ReplyEncoder(incarnation: incarnation)
        membership = Membership(
            server: config.name, workerTimeout: config.workerTimeout, takeoverAfter: config.takeoverAfter,
            numWorkers: config.numWorkers)
        if let r = restored {
            updates = r.updates
            updatesAtLastCheckpoint = r.updates
            scaling = r.scaling
            partitioning = r.partitioning
            placement = r.placement
            model = r.model
            let n = r.numWorkers.flatMap { (1...config.limits.maxWorkers).contains($0) ? $0 : nil }
            membership.restore(r.workers.map { ($0.index, $0.incarnation, $0.done) }, numWorkers: n, now: now)
            for w in r.workers {
                progress[w.index] = WorkerProgress(lastPushRequest: w.lastPushRequest, lastPushedStep: w.lastPushedStep)
            }
        }
    }

    // MARK: - Inputs

    /// Handles one request from `peer`; never throws: problems become error replies.
    public func receive(_ frames: [Frame], from peer: Peer, now: Double) -> [Effect] {
        if shunned.contains(peer.id) { return [] }
        lastNow = now
        var out: [Effect] = []
        // The request's id and index, when its header can be read, so that an error reply names the request.
        var header = frames.first.flatMap { f in f.withUnsafeBytes { try? Header(decoding: $0) } }
            ?? Header(kind: .error, workerID: 0, requestID: 0, incarnation: 0)
        do {
            let envelope = try Envelope(frames: frames[...])
            header = envelope.header
            if let reply = try handle(envelope, peer: peer, now: now, into: &out) {
                out.append(send(reply, to: envelope.header, peer: peer))
            }
        } catch let e as WireError {
            out.append(errorReply(ErrorBody(code: e.code, message: "ps \(config.name): \(e)"), peer, header))
        } catch let e as ErrorBody {
            out.append(errorReply(e, peer, header))
        } catch let e as Membership.Refusal {
            if e.code == .wrongIdentity || e.code == .indexTaken { counters.identityRefused += 1 }
            out.append(errorReply(ErrorBody(code: e.code, message: e.message), peer, header))
        } catch {
            out.append(errorReply(ErrorBody(code: .malformed, message: "ps \(config.name): \(error)"), peer, header))
        }
        out += advance()
        out += exitIfFinished()
        return out
    }

    /// The server did not run for `seconds` while it waited for requests (a wait that overran its timeout:
    /// SIGSTOP, starvation). Nothing was read meanwhile, so nobody could be heard: that time is excused
    /// (`Membership.excuse`), before the heartbeats queued meanwhile are read.
    public func excuse(stalled seconds: Double) {
        membership.excuse(seconds)
        guard mayWarn("the server did not run", now: lastNow) else { return }
        logger.warning(
            "the server did not run for a while (paused, stopped or starved); that time is not counted as any worker's silence",
            metadata: ["stalled.seconds": "\(String(format: "%.1f", seconds))"])
    }

    /// Advances time: declares silent workers lost, asks for timed checkpoints, and exits when every
    /// worker is done or lost.
    /// - Parameter judgeSilence: false while requests queued during a stall are still unread (`ServerLoop`).
    public func tick(now: Double, judgeSilence: Bool = true) -> [Effect] {
        var out: [Effect] = []
        lastNow = now
        for (key, count) in logBudget.closed(now: now) {
            logger.warning(
                "held back repeated warnings (the counters and /metrics have them all)",
                metadata: ["warning": "\(key)", "held.back": "\(count)", "window.seconds": "\(Int(logBudget.window))"])
        }
        for change in judgeSilence ? membership.tick(now: now) : [] {
            counters.workersLost += 1
            switch change {
            case .lost(let index, let name, let silent):
                logger.warning(
                    "worker lost: silent too long; training goes on without it",
                    metadata: ["worker.index": "\(index)", "worker.name": "\(name)", "silent.seconds": "\(String(format: "%.1f", silent))"])
            case .neverJoined(let index):
                logger.warning("worker never joined; training goes on without it", metadata: ["worker.index": "\(index)"])
            }
        }
        out += advance()
        if updates != updatesAtLastCheckpoint {
            if let every = config.checkpointEvery, every > 0, updates - updatesAtLastCheckpoint >= UInt64(every) {
                out.append(.checkpoint(reason: "every \(every) updates"))
            } else if let secs = config.checkpointSeconds, now - lastCheckpointAt >= secs {
                out.append(.checkpoint(reason: "every \(Int(secs)) s"))
            }
        }
        out += exitIfFinished()
        return out
    }

    /// Tells the rules a checkpoint was written (its timer and update count restart).
    public func checkpointWritten(now: Double) {
        lastCheckpointAt = now
        updatesAtLastCheckpoint = updates
        counters.checkpoints += 1
    }

    /// Whether a warning of `key` a peer caused may be written now (`LogBudget`), for the loop's own warnings.
    public func mayWarn(_ key: String, now: Double) -> Bool { logBudget.allows(key, now: now) }

    /// Stops answering `peer` (it does not read its replies); its requests are ignored from now on.
    public func shun(_ peer: Peer) {
        shunned.insert(peer.id)
        deferred.removeAll { $0.peer.id == peer.id }
    }

    /// The staleness samples since the last call.
    public func drainStaleness() -> [UInt64] {
        defer { stalenessSamples.removeAll(keepingCapacity: true) }
        return stalenessSamples
    }

    /// Counts peers refused by admission.
    public func countRefused(_ n: Int) { counters.refusedPeers += n }

    /// Counts replies the transport dropped.
    public func countDroppedReply() { counters.repliesDropped += 1 }

    /// Counts messages dropped whole for their size.
    public func countOversized() { counters.oversizedMessages += 1 }

    /// Counts requests refused because their connection's key was revoked.
    public func countRevoked() { counters.revokedRequests += 1 }

    // MARK: - Reading

    /// The state to checkpoint.
    public func snapshot() -> ServerState {
        ServerState(
            variables: store.saved, updates: updates, syncStep: policy.syncStep, numWorkers: membership.numWorkers,
            scaling: scaling, partitioning: partitioning, placement: placement,
            workers: membership.members.keys.sorted().compactMap { i in
                guard let m = membership[i], m.incarnation != 0 else { return nil }
                let p = progress[i] ?? WorkerProgress()
                return SavedWorker(
                    index: i, incarnation: m.incarnation, lastPushRequest: p.lastPushRequest, lastPushedStep: p.lastPushedStep,
                    done: m.status == .done)
            }, model: model)
    }

    /// The current value of a variable.
    public func value(of name: String) -> [Float]? { store[name]?.value }
    /// Bytes of the variables' values held here (float32), without optimizer slots.
    public var valueBytes: Int { store.bytesHeld / 3 }
    /// The names this server holds, in registration order.
    public var variableNames: [String] { store.order }
    /// The job's worker count, once known.
    public var numWorkers: Int? { membership.numWorkers }
    /// Sync: steps completed.
    public var syncStep: UInt64 { policy.syncStep }
    /// Whether every worker of the job is done or lost.
    public var allWorkersFinished: Bool { membership.allFinished }
    /// Whether a pull for `step` from `worker` would be answered now.
    func ready(forStep step: UInt64, worker: UInt32) -> Bool { policy.ready(forStep: step, worker: worker, in: self) }
    /// Workers by status, for reports.
    public var workerCounts: (active: Int, done: Int, lost: Int) { membership.counts }

    // MARK: - Requests

    /// Checks who sent `m`, decodes it, and carries it out; returns the reply (nil: it waits, or was sent).
    func handle(_ m: Envelope, peer: Peer, now: Double, into out: inout [Effect]) throws -> Reply? {
        let index = m.header.workerID
        switch m.header.kind {
        case .hello:
            return try hello(m, peer: peer, now: now)
        case .heartbeat:
            try membership.heartbeat(index: index, incarnation: m.header.incarnation, peer: peer, now: now)
            return .pong
        default:
            guard m.header.kind.isRequest else {
                throw ErrorBody(code: .protocolOrder, message: "ps \(config.name): \(m.header.kind) is a reply; servers take requests only")
            }
            let member = try membership.request(index: index, incarnation: m.header.incarnation, peer: peer, kind: m.header.kind, now: now)
            let wire = progress[index]?.wire ?? WorkerWire()
            switch try decoder.decode(m, store: store, dtype: wire.dtype) {
            case .ping, .heartbeat:
                return .pong
            case .register(let body, let values):
                try store.register(body.variables, values: values, by: member.name, open: updates == 0 && policy.syncStep == 0)
                return .registered(names: body.variables.map(\.name))
            case .pull(let names):
                counters.pulls[index, default: 0] += 1
                if policy.ready(forStep: m.header.step, worker: index, in: self) { return valuesReply(index, names) }
                let waiting = deferred.filter { $0.header.workerID == index }.count
                guard waiting < config.limits.maxDeferredPerWorker else {
                    throw store.limitError(
                        "worker \(index) has \(waiting) pulls waiting", config.limits.maxDeferredPerWorker, "(pulls waiting per worker)")
                }
                deferred.append((peer, m.header, names))
                return nil
            case .push(let names, let gradients):
                counters.pushes[index, default: 0] += 1
                return .pushed(try push(m.header, names: names, gradients: gradients))
            case .done:
                membership.done(index: index)
                logger.info("worker done", metadata: ["worker.index": "\(index)", "ps.done": "\(workerCounts.done)/\(numWorkers ?? 0)"])
                return .goodbye
            case .hello:
                return nil  // handled above
            }
        }
    }

    func hello(_ m: Envelope, peer: Peer, now: Double) throws -> Reply {
        let hello = try m.decode(Hello.self, limit: 1 << 16)
        let index = m.header.workerID
        let limit = config.limits.maxWorkers
        guard hello.numWorkers >= 1, hello.numWorkers <= limit else {
            throw ErrorBody(
                code: .limitExceeded,
                message:
                    "ps \(config.name): \(hello.workerName) says the job has \(hello.numWorkers) workers; this server takes 1 to \(limit) (--max-workers)")
        }
        guard Int(index) < hello.numWorkers else {
            throw ErrorBody(code: .malformed, message: "ps \(config.name): \(hello.workerName) has index \(index) of \(hello.numWorkers) workers")
        }
        guard m.header.incarnation != 0 else {
            throw ErrorBody(code: .malformed, message: "ps \(config.name): hello carries no worker incarnation")
        }
        let dtype = hello.wireDType ?? .float32
        guard config.wireDTypes.contains(dtype) else {
            throw ErrorBody(
                code: .unsupported,
                message:
                    "ps \(config.name) does not take tensors as \(dtype.rawValue) (it takes \(config.wireDTypes.map(\.rawValue).sorted().joined(separator: ", "))); start \(hello.workerName) with --wire-dtype float32"
            )
        }
        if let wanted = hello.scaling, let fixed = scaling, wanted != fixed {
            throw ErrorBody(
                code: .settingsConflict,
                message:
                    "ps \(config.name): \(hello.workerName) scales its data as \(wanted), but this job uses \(fixed); give every worker the same --scaling (or --scaling auto and the same seed)"
            )
        }
        if let text = hello.partitioning, text.utf8.count > Self.maxPartitioningBytes {
            throw ErrorBody(
                code: .malformed,
                message: "ps \(config.name): \(hello.workerName) names a partitioning of \(text.utf8.count) bytes; at most \(Self.maxPartitioningBytes)")
        }
        if let fixed = partitioning, fixed != (hello.partitioning ?? "none") {
            throw ErrorBody(
                code: .settingsConflict,
                message:
                    "ps \(config.name): \(hello.workerName) partitions its variables as \((hello.partitioning ?? "none").prefix(80)), but this job uses \(fixed); give every worker the same --partitioner"
            )
        }
        if let text = hello.placement, text.utf8.count > Self.maxPlacementBytes {
            throw ErrorBody(
                code: .malformed,
                message: "ps \(config.name): \(hello.workerName) names a placement of \(text.utf8.count) bytes; at most \(Self.maxPlacementBytes)")
        }
        if let fixed = placement, let wanted = hello.placement, wanted != fixed {
            throw ErrorBody(
                code: .settingsConflict,
                message:
                    "ps \(config.name) is server \(fixed) in the --ps lists of this job's workers, but server \(wanted) in the --ps of \(hello.workerName); variables are placed by that position, so every worker must list the same servers in the same order"
            )
        }
        let outcome: Membership.HelloOutcome
        do {
            outcome = try membership.hello(
                index: index, incarnation: m.header.incarnation, name: hello.workerName, jobSize: hello.numWorkers, peer: peer, now: now)
        } catch {
            if error.code == .indexDone {
                logger.info("refused a hello for a finished task index", metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)"])
            }
            throw error
        }
        // Whatever it was waiting for, it asks again after a hello: waiting pulls would only count against its limit.
        deferred.removeAll { $0.header.workerID == index }
        decoder.forget(index)
        var p = progress[index] ?? WorkerProgress()
        switch outcome {
        case .joined:
            logger.info("worker joined", metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)"])
        case .reconnected:
            logger.info("worker reconnected", metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)"])
        case .rejoined(let previous):
            // A new process for this index (a restart): it continues from this index's last step; its request
            // ids start again, so the dedupe record does too.
            logger.info(
                "worker rejoined as a new process", metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)", "was": "\(previous)"])
            p.lastPushRequest = 0
            p.pendingPushRequest = nil
        }
        p.wire = WorkerWire(
            dtype: dtype, packed: hello.packed == true, maxFrameBytes: hello.maxFrameBytes.map { max(Self.minFrameBytes, $0) } ?? Int.max)
        progress[index] = p
        if scaling == nil { scaling = hello.scaling }
        if partitioning == nil { partitioning = hello.partitioning ?? "none" }
        if placement == nil { placement = hello.placement }
        if model == nil, let m = hello.model, m.utf8.count <= Hello.maxModelBytes { model = m }
        return .welcome(
            Welcome(
                server: config.name, mode: config.mode, staleness: config.staleness, optimizer: config.optimizer.description,
                backupWorkers: config.backupWorkers, updates: updates, resumeStep: policy.resumeStep(for: p), wireDType: dtype,
                scaling: scaling, packed: hello.packed == true ? true : nil, maxFrameBytes: config.limits.maxFrameBytes))
    }

    func push(_ header: Header, names: [String], gradients: [Frame]) throws -> Pushed {
        let index = header.workerID
        var p = progress[index] ?? WorkerProgress()
        // Exactly once: a re-sent push (same incarnation, a request id already handled) changes nothing.
        if header.requestID <= p.lastPushRequest || header.requestID == p.pendingPushRequest {
            counters.duplicatePushes += 1
            return Pushed(outcome: config.mode == .sync && header.requestID == p.pendingPushRequest ? .queued : .applied, duplicate: true)
        }
        if stalenessSamples.count < 4096 {
            stalenessSamples.append(updates >= p.updatesAtLastPull ? updates - p.updatesAtLastPull : 0)
        }
        let outcome = try policy.push(
            index: index, step: header.step, names: names, gradients: gradients, scale: clipScale(gradients), in: self)
        p = progress[index] ?? p
        switch outcome {
        case .applied:
            p.lastPushRequest = header.requestID
        case .late:
            p.lastPushRequest = header.requestID
        case .queued:
            if let earlier = p.pendingPushRequest { p.lastPushRequest = max(p.lastPushRequest, earlier) }
            p.pendingPushRequest = header.requestID
            p.lastPushedStep = max(p.lastPushedStep, header.step)
        }
        progress[index] = p
        return Pushed(outcome: outcome)
    }

    /// Applies one update; counts it. Returns the variable that would not be finite, if any (nothing applied).
    func applyUpdate(names: [String], gradients: [Frame], scale: Float) -> String? {
        if let bad = store.apply(config.optimizer, names: names, gradients: gradients, scale: scale) { return bad }
        // A push naming nothing changes nothing, and is not counted as an update.
        if !names.isEmpty { updates += 1 }
        return nil
    }

    /// With `clipNorm`, the factor that brings this push's global norm down to it (nil: no clipping needed).
    func clipScale(_ frames: [Frame]) -> Float? {
        guard let c = config.clipNorm else { return nil }
        var sum = 0.0
        for f in frames {
            f.withUnsafeBytes { for x in $0.bindMemory(to: Float.self) { sum += Double(x) * Double(x) } }
        }
        let norm = sum.squareRoot()
        return norm > Double(c) ? Float(Double(c) / norm) : nil
    }

    // MARK: - Progress

    /// Applies what the policy finds ready, and answers the pulls that became ready.
    func advance() -> [Effect] {
        policy.advance(in: self)
        guard !deferred.isEmpty else { return [] }
        var out: [Effect] = []
        var still: [(peer: Peer, header: Header, names: [String])] = []
        for d in deferred {
            if policy.ready(forStep: d.header.step, worker: d.header.workerID, in: self) {
                out.append(send(valuesReply(d.header.workerID, d.names), to: d.header, peer: d.peer))
            } else {
                still.append(d)
            }
        }
        deferred = still
        return out
    }

    func exitIfFinished() -> [Effect] {
        guard !exiting, !config.keepServing, allWorkersFinished else { return [] }
        exiting = true
        let c = workerCounts
        return [.exit(reason: "every worker is done (\(c.done)) or lost (\(c.lost))")]
    }

    // MARK: - Replies

    /// The values reply for `names`; it reports (once) the sync steps this worker's gradients were dropped from.
    func valuesReply(_ index: UInt32, _ names: [String]) -> Reply {
        let dropped = progress[index]?.droppedSteps ?? 0
        progress[index]?.droppedSteps = 0
        progress[index]?.updatesAtLastPull = updates
        return .values(names: names, droppedSteps: dropped)
    }

    func send(_ reply: Reply, to request: Header, peer: Peer) -> Effect {
        if case .error(let e) = reply { return errorReply(e, peer, request) }
        let wire = progress[request.workerID]?.wire ?? WorkerWire()
        return .send(
            encoder.encode(reply, to: request, store: store, wire: wire, step: policy.reportedStep(updates: updates)), to: peer)
    }

    func errorReply(_ error: ErrorBody, _ peer: Peer, _ request: Header) -> Effect {
        counters.errors[error.code.rawValue, default: 0] += 1
        if logBudget.allows("refused a request: \(error.code.rawValue)", now: lastNow) {
            logger.warning("refused a request", metadata: ["error.code": "\(error.code.rawValue)", "error": "\(error.message)"])
        }
        var e = error
        if e.retryable == nil { e.retryable = e.code.isRetryable }
        return .send(encoder.error(e, requestID: request.requestID, workerID: request.workerID), to: peer)
    }
}

/// What a server counts, for logs, metrics and tests.
public struct ServerCounters: Sendable, Equatable {
    public var errors: [String: Int] = [:]
    public var duplicatePushes = 0
    public var lateGradients = 0
    public var nonFiniteRefused = 0
    /// Sync steps dropped because their averaged gradient was not finite (their workers are told).
    public var droppedSyncSteps = 0
    public var identityRefused = 0
    public var workersLost = 0
    public var refusedPeers = 0
    /// Messages with more parts or bytes than any valid request, dropped whole (their peers ignored).
    public var oversizedMessages = 0
    /// Requests refused because their connection's CURVE key was revoked (SIGHUP after removing it).
    public var revokedRequests = 0
    public var repliesDropped = 0
    public var checkpoints = 0
    /// Requests by worker index.
    public var pushes: [UInt32: Int] = [:]
    public var pulls: [UInt32: Int] = [:]
    public var errorsTotal: Int { errors.values.reduce(0, +) }
}
