import Foundation
import Logging
import Optimizers
import Tensors
import Transport
import VariableScopes
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
/// - Sync: the gradients of the next step from the active workers are summed in worker order (so the
///   result does not depend on arrival order), averaged and applied once, when all but `backupWorkers`
///   active workers have pushed; a worker's pull waits until its own gradient has been applied. Late
///   gradients (for a step already applied) are dropped and counted.
/// - Async: each push is applied as it arrives; with staleness s, a pull for step k waits until every
///   other active worker has pushed step k - 1 - s.
/// - Identity: hello binds a task index to a connection (and CURVE key) and an incarnation; every other
///   request for that index must come from there. A push is applied at most once per (incarnation,
///   request id), and a re-sent one gets the original's acknowledgement.
/// - Liveness: a worker silent for `workerTimeout` is declared lost and no longer waited for.
/// - Every number from the wire is checked against `limits` before use; a malformed request gets an
///   `.error` reply naming the problem, and the server keeps serving everyone else.
public final class ServerCore {
    public let config: ServerConfig
    /// Random per start; workers notice a restarted server by it.
    public let incarnation: UInt64
    let logger: Logger

    var variables: [String: ServedVariable] = [:]
    var order: [String] = []
    var bytesHeld = 0
    public private(set) var numWorkers: Int?
    /// The job's data scaling, fixed by the first hello that names one (recorded in checkpoints).
    public private(set) var scaling: String?
    /// The job's model description (`Hello.model`), fixed by the first hello that gives one; recorded in
    /// checkpoints for `forecast --restore`.
    public private(set) var model: String?
    var workers: [UInt32: WorkerRecord] = [:]
    /// When the first worker said hello: indices not seen by `workerTimeout` after it are declared lost.
    var firstHelloAt: Double?
    /// Updates applied in all, and (sync) steps completed.
    public private(set) var updates: UInt64 = 0
    public private(set) var syncStep: UInt64 = 0
    /// Sync: the gradients of step `syncStep + 1`, by worker, then by variable.
    var bucket: [UInt32: [String: [Float]]] = [:]
    /// Pulls waiting for their step.
    var deferred: [(peer: Peer, header: Header, names: [String])] = []
    /// Each worker names the same variables in every push and pull: the last body it sent and the names it
    /// held, checked, so that a body identical to the last one is not parsed and checked again.
    var namesSeen: [UInt32: (body: [UInt8], names: [String], registered: Int)] = [:]
    /// The body of each worker's last values reply (the names it carries), reused while the names are the same.
    var valuesBodies: [UInt32: (names: [String], body: [UInt8])] = [:]
    /// Peers that stopped reading their replies: ignored from now on.
    var shunned: Set<[UInt8]> = []
    var lastCheckpointAt: Double
    var updatesAtLastCheckpoint: UInt64 = 0
    var exiting = false
    public private(set) var counters = ServerCounters()
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
        numWorkers = config.numWorkers
        if let r = restored {
            for v in r.variables {
                variables[v.name] = ServedVariable(restoring: v)
                order.append(v.name)
                bytesHeld += v.value.count * 12
            }
            updates = r.updates
            syncStep = r.syncStep
            updatesAtLastCheckpoint = r.updates
            scaling = r.scaling
            model = r.model
            if numWorkers == nil, let n = r.numWorkers, (1...config.limits.maxWorkers).contains(n) { numWorkers = n }
            for w in r.workers {
                workers[w.index] = WorkerRecord(
                    name: "worker \(w.index)", incarnation: w.incarnation, peer: nil, key: nil, lastSeen: now,
                    status: w.done ? .done : .active, lastPushRequest: w.lastPushRequest, pendingPushRequest: nil,
                    lastPushedStep: w.lastPushedStep)
            }
            // Workers of the previous run count from now: they get `workerTimeout` to come back.
            if !r.workers.isEmpty { firstHelloAt = now }
        }
    }

    // MARK: - Inputs

    /// Handles one request from `peer`; never throws: problems become error replies.
    public func receive(_ frames: [Frame], from peer: Peer, now: Double) -> [Effect] {
        if shunned.contains(peer.id) { return [] }
        var out: [Effect] = []
        var requestID: UInt64 = 0
        var workerID: UInt32 = 0
        do {
            let envelope = try Envelope(frames: frames[...])
            requestID = envelope.header.requestID
            workerID = envelope.header.workerID
            try dispatch(envelope, peer: peer, now: now, into: &out)
        } catch let e as WireError {
            out.append(errorReply(ErrorBody(code: e.code, message: "ps \(config.name): \(e)"), peer, requestID, workerID))
        } catch let e as ErrorBody {
            out.append(errorReply(e, peer, requestID, workerID))
        } catch {
            out.append(
                errorReply(ErrorBody(code: .malformed, message: "ps \(config.name): \(error)"), peer, requestID, workerID))
        }
        out += progress()
        out += exitIfFinished()
        return out
    }

    /// Advances time: declares silent workers lost, asks for timed checkpoints, and exits when every
    /// worker is done or lost.
    public func tick(now: Double) -> [Effect] {
        var out: [Effect] = []
        if let n = numWorkers, let first = firstHelloAt {
            for index in 0..<UInt32(n) {
                if var w = workers[index] {
                    if w.status == .active && now - w.lastSeen > config.workerTimeout {
                        w.status = .lost
                        workers[index] = w
                        counters.workersLost += 1
                        logger.warning(
                            "worker lost: silent too long; training goes on without it",
                            metadata: [
                                "worker.index": "\(index)", "worker.name": "\(w.name)",
                                "silent.seconds": "\(String(format: "%.1f", now - w.lastSeen))",
                            ])
                    }
                } else if now - first > config.workerTimeout {
                    workers[index] = WorkerRecord(
                        name: "worker \(index)", incarnation: 0, peer: nil, key: nil, lastSeen: now, status: .lost,
                        lastPushRequest: 0, pendingPushRequest: nil, lastPushedStep: 0)
                    counters.workersLost += 1
                    logger.warning(
                        "worker never joined; training goes on without it", metadata: ["worker.index": "\(index)"])
                }
            }
        }
        out += progress()
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

    // MARK: - Reading

    /// The state to checkpoint.
    public func snapshot() -> ServerState {
        ServerState(
            variables: order.map { variables[$0]!.saved }, updates: updates, syncStep: syncStep,
            numWorkers: numWorkers, scaling: scaling,
            workers: workers.keys.sorted().compactMap { i in
                let w = workers[i]!
                guard w.incarnation != 0 else { return nil }
                return SavedWorker(
                    index: i, incarnation: w.incarnation, lastPushRequest: w.lastPushRequest,
                    lastPushedStep: w.lastPushedStep, done: w.status == .done)
            }, model: model)
    }

    /// The current value of a variable.
    public func value(of name: String) -> [Float]? { variables[name]?.value }
    /// The names this server holds, in registration order.
    public var variableNames: [String] { order }
    /// Whether every worker of the job is done or lost.
    public var allWorkersFinished: Bool {
        guard let n = numWorkers else { return false }
        return (0..<UInt32(n)).allSatisfy { workers[$0].map { $0.status != .active } ?? false }
    }
    /// Workers by status, for reports.
    public var workerCounts: (active: Int, done: Int, lost: Int) {
        var c = (active: 0, done: 0, lost: 0)
        for w in workers.values {
            switch w.status {
            case .active: c.active += 1
            case .done: c.done += 1
            case .lost: c.lost += 1
            }
        }
        return c
    }

    // MARK: - Requests

    func dispatch(_ m: Envelope, peer: Peer, now: Double, into out: inout [Effect]) throws {
        guard m.header.kind.isRequest else {
            throw ErrorBody(
                code: .protocolOrder, message: "ps \(config.name): \(m.header.kind) is a reply; servers take requests only")
        }
        if m.header.kind == .hello {
            out.append(try hello(m, peer: peer, now: now))
            return
        }
        let index = m.header.workerID
        guard var w = workers[index], w.incarnation != 0 else {
            throw ErrorBody(
                code: .protocolOrder,
                message:
                    "ps \(config.name): worker \(index) has not said hello (workers: \(numWorkers.map(String.init) ?? "none yet")); send hello first"
            )
        }
        guard w.peer?.id == peer.id, w.incarnation == m.header.incarnation else {
            counters.identityRefused += 1
            throw ErrorBody(
                code: .wrongIdentity,
                message:
                    "ps \(config.name): worker \(index) said hello on another connection (as \(w.name)); this \(m.header.kind) from \(peer) is refused"
            )
        }
        w.lastSeen = now
        if w.status == .lost {
            w.status = .active
            logger.info("lost worker is back", metadata: ["worker.index": "\(index)", "worker.name": "\(w.name)"])
        }
        workers[index] = w
        switch m.header.kind {
        case .ping: out.append(.send(Envelope.frames(replyHeader(.pong, to: m.header), Names(names: [])), to: peer))
        case .register: out.append(try register(m, peer: peer, worker: w))
        case .pull:
            counters.pulls[index, default: 0] += 1
            out += try pull(m, peer: peer)
        case .push:
            counters.pushes[index, default: 0] += 1
            out.append(try push(m, peer: peer))
        case .done:
            _ = try m.decode(Names.self, limit: 1 << 16)
            workers[index]!.status = .done
            logger.info(
                "worker done", metadata: ["worker.index": "\(index)", "ps.done": "\(workerCounts.done)/\(numWorkers ?? 0)"])
            out.append(.send(Envelope.frames(replyHeader(.goodbye, to: m.header), Names(names: [])), to: peer))
        default: break
        }
    }

    func hello(_ m: Envelope, peer: Peer, now: Double) throws -> Effect {
        let hello = try m.decode(Hello.self, limit: 1 << 16)
        let index = m.header.workerID
        let limit = config.limits.maxWorkers
        guard hello.numWorkers >= 1, hello.numWorkers <= limit else {
            throw ErrorBody(
                code: .limitExceeded,
                message:
                    "ps \(config.name): \(hello.workerName) says the job has \(hello.numWorkers) workers; this server takes 1 to \(limit) (--max-workers)"
            )
        }
        guard Int(index) < hello.numWorkers else {
            throw ErrorBody(
                code: .malformed,
                message: "ps \(config.name): \(hello.workerName) has index \(index) of \(hello.numWorkers) workers")
        }
        if let n = numWorkers, n != hello.numWorkers {
            throw ErrorBody(
                code: .workerCount,
                message:
                    "ps \(config.name): \(hello.workerName) says there are \(hello.numWorkers) workers, but this job has \(n); start every worker with the same --num-workers"
            )
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
        if var w = workers[index], w.incarnation != 0 {
            if w.incarnation == m.header.incarnation {
                // The same process on a new connection (it lost us and reconnected): keep its records.
                if let key = w.key, key != peer.key {
                    counters.identityRefused += 1
                    throw ErrorBody(
                        code: .wrongIdentity,
                        message:
                            "ps \(config.name): worker \(index) is bound to another CURVE key; this hello from \(peer) is refused")
                }
                w.peer = peer
                w.lastSeen = now
                w.status = .active
                workers[index] = w
                logger.info("worker reconnected", metadata: ["worker.index": "\(index)", "worker.name": "\(w.name)"])
            } else {
                if w.status == .active, w.peer != nil, w.peer?.id != peer.id, now - w.lastSeen < config.takeoverAfter {
                    counters.identityRefused += 1
                    throw ErrorBody(
                        code: .indexTaken,
                        message:
                            "ps \(config.name): task index \(index) is held by \(w.name), which is alive; \(hello.workerName) is refused. Give each worker its own --task-index"
                    )
                }
                // A new process for this index (a restart): it continues from this index's last step.
                logger.info(
                    "worker rejoined as a new process",
                    metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)", "was": "\(w.name)"])
                deferred.removeAll { $0.header.workerID == index }
                w = WorkerRecord(
                    name: hello.workerName, incarnation: m.header.incarnation, peer: peer, key: peer.key, lastSeen: now,
                    status: .active, lastPushRequest: 0, pendingPushRequest: nil, lastPushedStep: w.lastPushedStep)
                workers[index] = w
            }
        } else {
            workers[index] = WorkerRecord(
                name: hello.workerName, incarnation: m.header.incarnation, peer: peer, key: peer.key, lastSeen: now,
                status: .active, lastPushRequest: 0, pendingPushRequest: nil, lastPushedStep: workers[index]?.lastPushedStep ?? 0)
            logger.info("worker joined", metadata: ["worker.index": "\(index)", "worker.name": "\(hello.workerName)"])
        }
        numWorkers = hello.numWorkers
        workers[index]!.wireDType = dtype
        workers[index]!.packed = hello.packed == true
        workers[index]!.maxFrameBytes = hello.maxFrameBytes.map { max(0, $0) } ?? Int.max
        if scaling == nil { scaling = hello.scaling }
        if model == nil, let m = hello.model, m.utf8.count <= Hello.maxModelBytes { model = m }
        if firstHelloAt == nil { firstHelloAt = now }
        let welcome = Welcome(
            server: config.name, mode: config.mode, staleness: config.staleness,
            optimizer: config.optimizer.description, backupWorkers: config.backupWorkers, updates: updates,
            resumeStep: config.mode == .sync ? syncStep : workers[index]!.lastPushedStep, wireDType: dtype,
            scaling: scaling, packed: hello.packed == true ? true : nil,
            maxFrameBytes: hello.packed == true ? config.limits.maxFrameBytes : nil)
        return .send(Envelope.frames(replyHeader(.welcome, to: m.header), welcome), to: peer)
    }

    func register(_ m: Envelope, peer: Peer, worker: WorkerRecord) throws -> Effect {
        let body = try m.decode(Register.self, limit: Body.defaultLimit)
        let limits = config.limits
        let name = config.name
        guard body.variables.count <= limits.maxNamesPerRequest else {
            throw limitError("a register names \(body.variables.count) variables", limits.maxNamesPerRequest, "--max-names-per-request")
        }
        // Check everything before creating anything, so a refused registration changes nothing.
        var seen: Set<String> = []
        var created: [(VariableSpecChecked)] = []
        var newBytes = 0
        for spec in body.variables {
            guard !spec.name.isEmpty, spec.name.utf8.count <= limits.maxNameLength else {
                throw ErrorBody(
                    code: .malformed, message: "ps \(name): a variable name must have 1 to \(limits.maxNameLength) bytes")
            }
            guard seen.insert(spec.name).inserted else {
                throw ErrorBody(code: .malformed, message: "ps \(name): variable \(spec.name) is named twice in one register")
            }
            let count = try checkedCount(spec.shape, of: spec.name)
            _ = try checkedCount(spec.fanShape, of: spec.name + " (fan shape)", elementLimit: Int.max)
            guard let dtype = DType(rawValue: spec.dtype) else {
                throw ErrorBody(code: .dtypeConflict, message: "ps \(name): variable \(spec.name) has unknown dtype \(spec.dtype)")
            }
            if let existing = variables[spec.name] {
                if existing.shape != spec.shape {
                    throw ErrorBody(
                        code: .shapeConflict,
                        message:
                            "ps \(name): variable \(spec.name) has shape \(formatShape(existing.shape)) (registered by \(existing.registeredBy)), but \(worker.name) asks for shape \(formatShape(spec.shape)); every worker must build the model with the same sizes"
                    )
                }
                if existing.dtype != spec.dtype {
                    throw ErrorBody(
                        code: .dtypeConflict,
                        message:
                            "ps \(name): variable \(spec.name) has dtype \(existing.dtype) (registered by \(existing.registeredBy)), but \(worker.name) asks for dtype \(spec.dtype)"
                    )
                }
                continue
            }
            guard updates == 0 && syncStep == 0 else {
                throw ErrorBody(
                    code: .registrationClosed,
                    message:
                        "ps \(name): variable \(spec.name) does not exist, and new variables can be registered only while the job forms (before the first update); this server holds \(order.count) variables"
                )
            }
            guard let initializer = initializer(spec.initializer, shape: spec.shape, count: count) else {
                throw ErrorBody(
                    code: .badInitializer,
                    message: "ps \(name): variable \(spec.name) has an unusable initializer \(spec.initializer.kind)")
            }
            let (bytes, o1) = count.multipliedReportingOverflow(by: 12)
            let (total, o2) = (bytesHeld + newBytes).addingReportingOverflow(bytes)
            guard !o1, !o2, total <= limits.maxTotalBytes else {
                throw limitError(
                    "variable \(spec.name) (\(formatShape(spec.shape)), with its optimizer slots) would bring the bytes held past",
                    limits.maxTotalBytes, "--max-total-bytes")
            }
            newBytes += bytes
            created.append(VariableSpecChecked(spec: spec, dtype: dtype, initializer: initializer))
        }
        guard order.count + created.count <= limits.maxVariables else {
            throw limitError("registering \(created.count) more variables would pass", limits.maxVariables, "--max-variables")
        }
        var made: [ServedVariable] = []
        for c in created {
            let values = c.initializer.values(
                shape: c.spec.shape, seed: c.spec.seed, name: c.spec.name, fanShape: c.spec.fanShape)
            guard values.allSatisfy(\.isFinite) else {
                throw ErrorBody(
                    code: .badInitializer,
                    message: "ps \(name): the initializer of \(c.spec.name) gives values that are not finite")
            }
            made.append(
                ServedVariable(
                    name: c.spec.name, shape: c.spec.shape, dtype: c.spec.dtype, value: values,
                    registeredBy: worker.name))
        }
        for v in made {
            variables[v.name] = v
            order.append(v.name)
            bytesHeld += v.bytes
        }
        return .send(
            Envelope.frames(replyHeader(.registered, to: m.header), Names(names: body.variables.map(\.name))), to: peer)
    }

    func pull(_ m: Envelope, peer: Peer) throws -> [Effect] {
        let names = try checkedNames(m)
        guard m.tensors.isEmpty else {
            throw ErrorBody(code: .malformed, message: "ps \(config.name): a pull carries no tensors")
        }
        if ready(forStep: m.header.step, worker: m.header.workerID) {
            return [values(peer, header: m.header, names: names)]
        }
        let waiting = deferred.filter { $0.header.workerID == m.header.workerID }.count
        guard waiting < config.limits.maxDeferredPerWorker else {
            throw limitError("worker \(m.header.workerID) has \(waiting) pulls waiting", config.limits.maxDeferredPerWorker, "(pulls waiting per worker)")
        }
        deferred.append((peer, m.header, names))
        return []
    }

    func push(_ m: Envelope, peer: Peer) throws -> Effect {
        let names = try checkedNames(m)
        let index = m.header.workerID
        var w = workers[index]!
        let received = try tensorFrames(m, names: names, packed: w.packed, dtype: w.wireDType)
        // Exactly once: a re-sent push (same incarnation, a request id already handled) changes nothing.
        if m.header.requestID <= w.lastPushRequest || m.header.requestID == w.pendingPushRequest {
            counters.duplicatePushes += 1
            return .send(
                Envelope.frames(replyHeader(.pushed, to: m.header), body: Pushed(outcome: .applied, duplicate: true).body), to: peer)
        }
        // Validate every frame first: a push is applied whole or not at all.
        let dtype = w.wireDType
        var tensors = received
        for (k, (name, frame)) in zip(names, received).enumerated() {
            let v = variables[name]!
            guard frame.count == v.value.count * dtype.size else {
                throw ErrorBody(
                    code: .wrongTensorSize,
                    message:
                        "ps \(config.name): gradient for \(v.name) has \(frame.count) bytes; shape \(formatShape(v.shape)) needs \(v.value.count * dtype.size) as \(dtype.rawValue)"
                )
            }
            if dtype == .bf16 {
                // Widen to float32 masters' precision before anything else looks at it.
                var wide = [Float](repeating: 0, count: v.value.count)
                frame.withUnsafeBytes { src in wide.withUnsafeMutableBufferPointer { BFloat16.decode(src, into: $0) } }
                tensors[k] = Frame(floats: wide)
            }
            // Async: the update's own pass finds a non-finite gradient (it makes the update non-finite) and
            // names it then. Sync keeps gradients for later, so they are checked now.
            guard config.mode == .async || tensors[k].withUnsafeBytes({ allFinite($0.bindMemory(to: Float.self)) }) else {
                counters.nonFiniteRefused += 1
                throw ErrorBody(
                    code: .nonFinite,
                    message: "ps \(config.name): gradient for \(v.name) holds NaN or infinity; nothing was applied")
            }
        }
        let scale = clipScale(tensors[...])
        let step = m.header.step
        if stalenessSamples.count < 4096 {
            stalenessSamples.append(updates >= w.updatesAtLastPull ? updates - w.updatesAtLastPull : 0)
        }
        var outcome = Pushed.Outcome.applied
        switch config.mode {
        case .async:
            var staged: [ServedVariable] = []
            for (name, frame) in zip(names, tensors) {
                let v = variables[name]!
                let ok = frame.withUnsafeBytes { v.stage(config.optimizer, gradient: $0.bindMemory(to: Float.self), scale: scale ?? 1) }
                guard ok else {
                    counters.nonFiniteRefused += 1
                    if let k = tensors.indices.first(where: { k in
                        !tensors[k].withUnsafeBytes { allFinite($0.bindMemory(to: Float.self)) }
                    }) {
                        throw ErrorBody(
                            code: .nonFinite,
                            message: "ps \(config.name): gradient for \(names[k]) holds NaN or infinity; nothing was applied")
                    }
                    throw ErrorBody(
                        code: .nonFinite,
                        message:
                            "ps \(config.name): the gradient for \(name) would make it or its optimizer state NaN or infinite; nothing was applied"
                    )
                }
                staged.append(v)
            }
            for v in staged { v.commit(config.optimizer) }
            // A push naming nothing changes nothing, and is not counted as an update.
            if !staged.isEmpty { updates += 1 }
            w.lastPushRequest = m.header.requestID
            w.lastPushedStep = max(w.lastPushedStep, step)
        case .sync:
            if step <= syncStep {
                counters.lateGradients += 1
                outcome = .late
                w.lastPushRequest = m.header.requestID
            } else {
                // A push labelled past the next step (the server restarted and lost updates) counts towards it.
                var grads: [String: [Float]] = [:]
                for (name, frame) in zip(names, tensors) {
                    grads[name] = frame.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                    if let s = scale { for k in grads[name]!.indices { grads[name]![k] *= s } }
                }
                bucket[index] = grads
                if let earlier = w.pendingPushRequest { w.lastPushRequest = max(w.lastPushRequest, earlier) }
                w.pendingPushRequest = m.header.requestID
                w.lastPushedStep = max(w.lastPushedStep, step)
            }
        }
        workers[index] = w
        return .send(Envelope.frames(replyHeader(.pushed, to: m.header), body: Pushed(outcome: outcome).body), to: peer)
    }

    /// A push's tensors, one per name: the frames as sent, or cut out of the one packed frame (views, no
    /// copy) when a packing worker sent one frame for several names (it sends a frame each when the packed
    /// frame would pass this server's frame limit). The packed frame must hold exactly the named
    /// variables' bytes.
    func tensorFrames(_ m: Envelope, names: [String], packed: Bool, dtype: WireDType) throws -> [Frame] {
        guard packed, names.count > 1, m.tensors.count != names.count else {
            guard names.count == m.tensors.count else {
                throw WireError.tensorCountMismatch(header: Int(m.header.tensorCount), frames: m.tensors.count, names: names.count)
            }
            return Array(m.tensors)
        }
        guard m.tensors.count == 1, let frame = m.tensors.first else {
            throw ErrorBody(
                code: .malformed,
                message:
                    "ps \(config.name): a \(m.header.kind) naming \(names.count) variables carries \(m.tensors.count) tensor frames; a packing worker sends one frame for all or one per variable"
            )
        }
        // Sizes are of registered variables, each within --max-total-bytes: the sum cannot overflow.
        let sizes = names.map { variables[$0]!.value.count * dtype.size }
        let total = sizes.reduce(0, +)
        guard frame.count == total else {
            throw ErrorBody(
                code: .wrongTensorSize,
                message:
                    "ps \(config.name): the packed gradients for \(names.count) variables have \(frame.count) bytes; they need \(total) as \(dtype.rawValue)"
            )
        }
        var frames: [Frame] = []
        frames.reserveCapacity(names.count)
        var offset = 0
        for size in sizes {
            frames.append(frame.slice(offset..<offset + size))
            offset += size
        }
        return frames
    }

    // MARK: - Sync and staleness

    /// Applies the sync step when enough workers have pushed, and answers the pulls that became ready.
    func progress() -> [Effect] {
        if config.mode == .sync, !bucket.isEmpty, bucket.count >= needed() {
            applyAveraged()
        }
        var out: [Effect] = []
        var still: [(peer: Peer, header: Header, names: [String])] = []
        for d in deferred {
            if ready(forStep: d.header.step, worker: d.header.workerID) {
                out.append(values(d.peer, header: d.header, names: d.names))
            } else {
                still.append(d)
            }
        }
        deferred = still
        return out
    }

    /// Gradients the next sync step waits for: every active worker's, plus any a finished one sent anyway,
    /// less the backup workers.
    func needed() -> Int {
        let n = numWorkers ?? 1
        var count = 0
        for i in 0..<UInt32(n) {
            let active = workers[i].map { $0.status == .active } ?? true
            if active || bucket[i] != nil { count += 1 }
        }
        return max(1, count - config.backupWorkers)
    }

    /// Sums in worker order, averages and applies once per variable.
    func applyAveraged() {
        let contributors = bucket.keys.sorted()
        let scale = 1 / Float(contributors.count)
        var staged: [ServedVariable] = []
        var finite = true
        for name in order {
            let parts = contributors.compactMap { bucket[$0]?[name] }
            guard let first = parts.first else { continue }
            var sum = first
            for p in parts.dropFirst() { for k in 0..<sum.count { sum[k] += p[k] } }
            if parts.count > 1 { for k in 0..<sum.count { sum[k] *= scale } }
            let v = variables[name]!
            if sum.withUnsafeBufferPointer({ v.stage(config.optimizer, gradient: $0) }) {
                staged.append(v)
            } else {
                finite = false
                break
            }
        }
        if finite {
            for v in staged { v.commit(config.optimizer) }
            updates += 1
        } else {
            counters.nonFiniteRefused += 1
            logger.error(
                "sync step dropped: its averaged gradient would make a variable or its optimizer state non-finite",
                metadata: ["step": "\(syncStep + 1)"])
        }
        syncStep += 1
        for i in contributors {
            if let p = workers[i]?.pendingPushRequest {
                workers[i]!.lastPushRequest = max(workers[i]!.lastPushRequest, p)
                workers[i]!.pendingPushRequest = nil
            }
        }
        bucket = [:]
    }

    /// Whether a pull for `step` from `worker` can be answered now.
    func ready(forStep step: UInt64, worker: UInt32) -> Bool {
        switch config.mode {
        case .sync:
            return bucket[worker] == nil
        case .async:
            guard let s = config.staleness, let n = numWorkers else { return true }
            let (lag, overflow) = UInt64(s).addingReportingOverflow(1)
            guard !overflow, step > lag else { return true }
            let floor = step - lag
            for w in 0..<UInt32(n) where w != worker {
                let record = workers[w]
                if let r = record, r.status != .active { continue }
                if (record?.lastPushedStep ?? 0) < floor { return false }
            }
            return true
        }
    }

    func exitIfFinished() -> [Effect] {
        guard !exiting, !config.keepServing, allWorkersFinished else { return [] }
        exiting = true
        let c = workerCounts
        return [.exit(reason: "every worker is done (\(c.done)) or lost (\(c.lost))")]
    }

    // MARK: - Checks

    func checkedCount(_ shape: [Int], of name: String, elementLimit: Int? = nil) throws -> Int {
        let limit = elementLimit ?? config.limits.maxVariableElements
        guard shape.count <= config.limits.maxRank else {
            throw limitError("variable \(name) has rank \(shape.count)", config.limits.maxRank, "(largest rank)")
        }
        guard let n = Limits.elementCount(shape), n <= limit else {
            throw ErrorBody(
                code: .limitExceeded,
                message:
                    "ps \(config.name): variable \(name) has shape \(formatShape(shape)), which is negative, overflows, or has more than \(config.limits.maxVariableElements) elements (--max-variable-elements)"
            )
        }
        return n
    }

    /// The names of a pull or push: bounded, distinct, and registered here.
    func checkedNames(_ m: Envelope) throws -> [String] {
        let index = m.header.workerID
        // Variables are never removed, so names checked against as many registered variables still pass.
        if let seen = namesSeen[index], seen.registered == order.count,
            m.body.withUnsafeBytes({ $0.elementsEqual(seen.body) })
        {
            return seen.names
        }
        let names = try m.decode(Names.self, limit: 1 << 22).names
        guard names.count <= config.limits.maxNamesPerRequest else {
            throw limitError("a \(m.header.kind) names \(names.count) variables", config.limits.maxNamesPerRequest, "--max-names-per-request")
        }
        var seen: Set<String> = []
        for n in names {
            guard seen.insert(n).inserted else {
                throw ErrorBody(code: .malformed, message: "ps \(config.name): a \(m.header.kind) names \(n) twice")
            }
            guard variables[n] != nil else {
                throw ErrorBody(
                    code: .unknownVariable,
                    message:
                        "ps \(config.name): no variable named \(n) is registered here; register it first (this server holds \(order.count) variables)"
                )
            }
        }
        if workers[index] != nil { namesSeen[index] = (m.body.bytes, names, order.count) }
        return names
    }

    func limitError(_ what: String, _ limit: Int, _ flag: String) -> ErrorBody {
        ErrorBody(code: .limitExceeded, message: "ps \(config.name): \(what) the limit of \(limit) \(flag)")
    }

    func initializer(_ spec: InitializerSpec, shape: [Int], count: Int) -> Initializer? {
        guard spec.a.isFinite, spec.b.isFinite else { return nil }
        switch spec.kind {
        case "tensor":
            guard let values = spec.values, values.count == count, values.allSatisfy(\.isFinite) else { return nil }
            return .tensor(Tensor(shape: shape, scalars: values))
        case "zeros": return .zeros
        case "ones": return .ones
        case "constant": return .constant(spec.a)
        case "normal": return .normal(mean: spec.a, stddev: spec.b)
        case "truncated_normal": return .truncatedNormal(mean: spec.a, stddev: spec.b)
        case "glorot_uniform": return .glorotUniform
        case "uniform": return .uniform(lower: spec.a, upper: spec.b)
        default: return nil
        }
    }

    /// With `clipNorm`, the factor that brings this push's global norm down to it (nil: no clipping needed).
    func clipScale(_ frames: ArraySlice<Frame>) -> Float? {
        guard let c = config.clipNorm else { return nil }
        var sum = 0.0
        for f in frames {
            f.withUnsafeBytes { for x in $0.bindMemory(to: Float.self) { sum += Double(x) * Double(x) } }
        }
        let norm = sum.squareRoot()
        return norm > Double(c) ? Float(Double(c) / norm) : nil
    }

    // MARK: - Replies

    func replyHeader(_ kind: MessageKind, to request: Header) -> Header {
        Header(kind: kind, workerID: request.workerID, requestID: request.requestID, step: request.step, incarnation: incarnation)
    }

    /// The values reply: the variables' current arrays, shared with the frames (copy-on-write keeps them
    /// unchanged until sent). Its step is the server's update count (sync: its step).
    func values(_ peer: Peer, header: Header, names: [String]) -> Effect {
        let worker = workers[header.workerID]
        let bf16 = worker?.wireDType == .bf16
        let values = names.map { variables[$0]!.value }
        let count = values.reduce(0) { $0 + $1.count }
        // Packed only when it fits the worker's frame limit; otherwise a frame per tensor, which it also takes.
        let frames: [Frame]
        if let worker, worker.packed, names.count > 1, count * worker.wireDType.size <= worker.maxFrameBytes {
            // One copy of the values into one frame saves more in system calls and wake-ups than it costs;
            // reserved first, so the copy never regrows its buffer.
            if bf16 {
                var all = [UInt8]()
                all.reserveCapacity(2 * count)
                for v in values { all += BFloat16.bytes(v) }
                frames = [Frame(all)]
            } else {
                var all = [Float]()
                all.reserveCapacity(count)
                for v in values { all += v }
                frames = [Frame(floats: all)]
            }
        } else {
            frames = values.map { bf16 ? Frame(BFloat16.bytes($0)) : Frame(floats: $0) }
        }
        workers[header.workerID]?.updatesAtLastPull = updates
        var h = replyHeader(.values, to: header)
        h.step = config.mode == .sync ? syncStep : updates
        let body: [UInt8]
        if let last = valuesBodies[header.workerID], last.names == names {
            body = last.body
        } else {
            body = Body.encode(Names(names: names))
            valuesBodies[header.workerID] = (names, body)
        }
        return .send(Envelope.frames(h, body: body, tensors: frames), to: peer)
    }

    func errorReply(_ error: ErrorBody, _ peer: Peer, _ requestID: UInt64, _ workerID: UInt32) -> Effect {
        counters.errors[error.code.rawValue, default: 0] += 1
        logger.warning("refused a request", metadata: ["error.code": "\(error.code.rawValue)", "error": "\(error.message)"])
        let h = Header(kind: .error, workerID: workerID, requestID: requestID, incarnation: incarnation)
        return .send(Envelope.frames(h, error), to: peer)
    }
}

struct VariableSpecChecked {
    let spec: VariableSpec
    let dtype: DType
    let initializer: Initializer
}

/// What the server knows of one task index.
struct WorkerRecord {
    enum Status { case active, done, lost }
    var name: String
    var incarnation: UInt64
    var peer: Peer?
    var key: String?
    var lastSeen: Double
    var status: Status
    /// The last push applied (or dropped as late) from this incarnation: re-sends up to it are duplicates.
    var lastPushRequest: UInt64
    /// Sync: the push waiting in the step's bucket.
    var pendingPushRequest: UInt64?
    var lastPushedStep: UInt64
    /// How this worker's tensors cross the wire.
    var wireDType: WireDType = .float32
    /// Whether they may travel packed, one frame per message (`Hello.packed`), and the largest frame the
    /// worker takes: values are packed only up to it.
    var packed = false
    var maxFrameBytes = Int.max
    /// The server's update count when this worker last got values: a push's staleness counts from it.
    var updatesAtLastPull: UInt64 = 0
}

/// What a server counts, for logs, metrics and tests.
public struct ServerCounters: Sendable, Equatable {
    public var errors: [String: Int] = [:]
    public var duplicatePushes = 0
    public var lateGradients = 0
    public var nonFiniteRefused = 0
    public var identityRefused = 0
    public var workersLost = 0
    public var refusedPeers = 0
    public var repliesDropped = 0
    public var checkpoints = 0
    /// Requests by worker index.
    public var pushes: [UInt32: Int] = [:]
    public var pulls: [UInt32: Int] = [:]
    public var errorsTotal: Int { errors.values.reduce(0, +) }
}
