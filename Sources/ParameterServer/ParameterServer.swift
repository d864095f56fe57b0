import Foundation
import Logging
import Optimizers
import SafeTensors
import Tensors
import VariableScopes
import Wire
import ZeroMQ

/// A parameter server (Li et al., OSDI 2014): owns the variables placed on it and their optimizer
/// state, applies workers' gradients, and serves their values.
///
/// One thread, one ROUTER socket. In `.sync` mode the gradients of step k from every active worker are
/// summed in worker order (so the result does not depend on arrival order), averaged and applied once,
/// and pulls for step k+1 wait until then. In `.async` mode each push is applied as it arrives; with a
/// staleness bound s, a pull for step k waits until every active worker has pushed step k - 1 - s.
/// Malformed requests get an `.error` reply naming the problem; the server keeps serving everyone else.
public final class ParameterServer {
    /// The options, with an empty name replaced by `ps-<bound port>`.
    public private(set) var options: ServerOptions
    let logger: Logger
    let context: Context
    let socket: Socket
    /// Random per start; workers notice a restarted server by it.
    public let incarnation = UInt64.random(in: 1...UInt64.max)
    /// The endpoint actually bound (resolves a port of `*`).
    public private(set) var boundEndpoint = ""

    var variables: [String: ServedVariable] = [:]
    var order: [String] = []
    var expectedWorkers: Int?
    var workerNames: [UInt32: String] = [:]
    var doneWorkers: Set<UInt32> = []
    /// Sync: gradients received for each step, by worker, then by variable.
    var pending: [UInt64: [UInt32: [String: [Float]]]] = [:]
    /// Sync: updates applied so far (pulls for step k need k - 1).
    public private(set) var appliedSteps: UInt64 = 0
    /// Async: the last step each worker pushed.
    var lastPushed: [UInt32: UInt64] = [:]
    /// Pulls waiting for their step, with the identity to answer.
    var deferred: [(identity: [UInt8], header: Header, names: [String])] = []
    private var stopRequested = false
    /// Counters for reports and tests.
    public private(set) var errorsSent = 0
    public private(set) var updatesApplied = 0

    /// Binds the server's socket.
    /// - Throws: `ZMQError` naming the endpoint (port in use, bad address).
    public init(options: ServerOptions, context: Context, logger: Logger) throws {
        self.options = options
        self.context = context
        self.logger = logger
        socket = try Socket(context, .router)
        try socket.setRouterMandatory(true)
        try socket.setMaxMessageSize(options.maxMessageBytes)
        try socket.setSendHighWaterMark(64)
        try socket.setReceiveHighWaterMark(64)
        try socket.setHeartbeat(intervalMilliseconds: 1000, timeoutMilliseconds: 5000)
        try socket.setSendTimeout(milliseconds: 1000)
        if let key = options.curveSecretKey { try socket.setCurveServer(secretKey: key) }
        try socket.bind(options.endpoint)
        boundEndpoint = try socket.lastEndpoint
        if options.name.isEmpty {
            self.options.name = "ps-" + (boundEndpoint.split(separator: ":").last.map(String.init) ?? "")
        }
    }

    /// Asks the loop to stop at its next turn (safe from a signal handler's queue).
    public func requestStop() {
        stopRequested = true
        context.shutdown()
    }

    /// Whether every expected worker has said it is done.
    public var allWorkersDone: Bool {
        if let n = expectedWorkers { return doneWorkers.count >= n }
        return false
    }

    /// Serves until every worker is done (unless `keepServing`) or a stop is requested, then writes
    /// the checkpoint.
    /// - Throws: only for failures of the server itself (its socket, its checkpoint directory).
    public func run() throws {
        logger.info(
            "serving",
            metadata: [
                "ps.endpoint": "\(boundEndpoint)", "ps.mode": "\(options.mode.rawValue)",
                "ps.optimizer": "\(options.optimizer)",
            ])
        while !stopRequested {
            let ready: Bool
            do {
                ready = try socket.waitReadable(milliseconds: 200)
            } catch let e as ZMQError where e.kind == .terminated {
                break
            }
            if ready {
                let frames: [Message]
                do {
                    frames = try socket.receive(dontWait: true)
                } catch let e as ZMQError where e.kind == .timeout {
                    continue
                } catch let e as ZMQError where e.kind == .terminated {
                    break
                }
                handle(frames)
            }
            if allWorkersDone && !options.keepServing {
                logger.info("every worker is done", metadata: ["ps.workers": "\(expectedWorkers ?? 0)"])
                break
            }
        }
        // Let the last replies (the goodbyes) leave before the socket closes; bounded by the linger.
        try? socket.setLinger(milliseconds: 2000)
        socket.close()
        try writeCheckpoint()
    }

    /// Handles one received message (identity frame first); never throws: problems become error replies.
    func handle(_ frames: [Message]) {
        guard let identityFrame = frames.first else { return }
        let identity = identityFrame.bytes
        var requestID: UInt64 = 0
        var workerID: UInt32 = 0
        do {
            let envelope = try Envelope(frames: frames[1...])
            requestID = envelope.header.requestID
            workerID = envelope.header.workerID
            try dispatch(envelope, identity: identity)
        } catch let e as WireError {
            reply(
                identity, error: ErrorBody(code: e.code, message: "ps \(options.name): \(e)"), requestID: requestID,
                workerID: workerID)
        } catch let e as ErrorBody {
            reply(identity, error: e, requestID: requestID, workerID: workerID)
        } catch {
            reply(
                identity, error: ErrorBody(code: .malformed, message: "ps \(options.name): \(error)"),
                requestID: requestID, workerID: workerID)
        }
    }

    func dispatch(_ m: Envelope, identity: [UInt8]) throws {
        if m.header.kind != .hello {
            // Only workers that said hello, with an index below the worker count, may do anything else.
            guard let n = expectedWorkers, Int(m.header.workerID) < n, workerNames[m.header.workerID] != nil else {
                throw ErrorBody(
                    code: .protocolOrder,
                    message:
                        "ps \(options.name): worker \(m.header.workerID) has not said hello (workers: \(expectedWorkers.map(String.init) ?? "none yet")); send hello first"
                )
            }
        }
        switch m.header.kind {
        case .hello: try hello(m, identity: identity)
        case .register: try register(m, identity: identity)
        case .pull: try pull(m, identity: identity)
        case .push: try push(m, identity: identity)
        case .done: try done(m, identity: identity)
        case .welcome, .registered, .values, .pushed, .goodbye, .error:
            throw ErrorBody(
                code: .protocolOrder,
                message: "ps \(options.name): \(m.header.kind) is a reply; servers take requests only")
        }
    }

    // MARK: - Requests

    func hello(_ m: Envelope, identity: [UInt8]) throws {
        let hello = try m.decode(Hello.self)
        guard hello.numWorkers >= 1, Int(m.header.workerID) < hello.numWorkers else {
            throw ErrorBody(
                code: .malformed,
                message:
                    "ps \(options.name): worker \(hello.workerName) has index \(m.header.workerID) of \(hello.numWorkers) workers"
            )
        }
        if let n = expectedWorkers, n != hello.numWorkers {
            throw ErrorBody(
                code: .malformed,
                message:
                    "ps \(options.name): worker \(hello.workerName) says there are \(hello.numWorkers) workers, earlier workers said \(n); start every worker with the same --num-workers"
            )
        }
        expectedWorkers = hello.numWorkers
        workerNames[m.header.workerID] = hello.workerName
        logger.info(
            "worker joined", metadata: ["worker.index": "\(m.header.workerID)", "worker.name": "\(hello.workerName)"])
        let welcome = Welcome(
            server: options.name, mode: options.mode, staleness: options.staleness, optimizer: options.optimizer)
        send(identity, Envelope.frames(replyHeader(.welcome, to: m.header), welcome))
    }

    func register(_ m: Envelope, identity: [UInt8]) throws {
        let body = try m.decode(Register.self)
        let who = workerNames[m.header.workerID] ?? "worker \(m.header.workerID)"
        // Check everything before creating anything, so a refused registration changes nothing.
        for spec in body.variables {
            guard spec.shape.allSatisfy({ $0 >= 0 }), spec.count <= Int(options.maxMessageBytes / 4) else {
                throw ErrorBody(
                    code: .malformed,
                    message: "ps \(options.name): variable \(spec.name) has an invalid shape \(formatShape(spec.shape))"
                )
            }
            guard DType(rawValue: spec.dtype) != nil else {
                throw ErrorBody(
                    code: .dtypeConflict,
                    message: "ps \(options.name): variable \(spec.name) has unknown dtype \(spec.dtype)")
            }
            guard spec.initializer.initializer(shape: spec.shape) != nil else {
                throw ErrorBody(
                    code: .badInitializer,
                    message:
                        "ps \(options.name): variable \(spec.name) has an unusable initializer \(spec.initializer.kind)"
                )
            }
            if let existing = variables[spec.name] {
                if existing.spec.shape != spec.shape {
                    throw ErrorBody(
                        code: .shapeConflict,
                        message:
                            "ps \(options.name): variable \(spec.name) has shape \(formatShape(existing.spec.shape)) (registered by \(existing.registeredBy)), but \(who) asks for shape \(formatShape(spec.shape)); every worker must build the model with the same sizes"
                    )
                }
                if existing.spec.dtype != spec.dtype {
                    throw ErrorBody(
                        code: .dtypeConflict,
                        message:
                            "ps \(options.name): variable \(spec.name) has dtype \(existing.spec.dtype) (registered by \(existing.registeredBy)), but \(who) asks for dtype \(spec.dtype)"
                    )
                }
            }
        }
        for spec in body.variables where variables[spec.name] == nil {
            let initializer = spec.initializer.initializer(shape: spec.shape)!
            let values = initializer.values(
                shape: spec.shape, seed: spec.seed, name: spec.name, fanShape: spec.fanShape)
            variables[spec.name] = ServedVariable(spec: spec, value: values, registeredBy: who)
            order.append(spec.name)
        }
        send(
            identity, Envelope.frames(replyHeader(.registered, to: m.header), Names(names: body.variables.map(\.name))))
    }

    func pull(_ m: Envelope, identity: [UInt8]) throws {
        let names = try m.decode(Names.self).names
        for n in names where variables[n] == nil { throw unknown(n) }
        if ready(forStep: m.header.step, worker: m.header.workerID) {
            sendValues(identity, header: m.header, names: names)
        } else {
            deferred.append((identity, m.header, names))
        }
    }

    func push(_ m: Envelope, identity: [UInt8]) throws {
        let names = try m.decode(Names.self).names
        guard names.count == m.tensors.count else {
            throw WireError.tensorCountMismatch(
                header: Int(m.header.tensorCount), frames: m.tensors.count, names: names.count)
        }
        // Validate every frame first: a push is applied whole or not at all.
        for (name, frame) in zip(names, m.tensors) {
            guard let v = variables[name] else { throw unknown(name) }
            guard frame.count == v.value.count * 4 else {
                throw ErrorBody(
                    code: .wrongTensorSize,
                    message:
                        "ps \(options.name): gradient for \(v.spec.name) has \(frame.count) bytes; shape \(formatShape(v.spec.shape)) needs \(v.value.count * 4)"
                )
            }
            let finite = frame.withUnsafeBytes { $0.bindMemory(to: Float.self).allSatisfy(\.isFinite) }
            guard finite else {
                throw ErrorBody(
                    code: .malformed,
                    message:
                        "ps \(options.name): gradient for \(v.spec.name) holds NaN or infinity; nothing was applied")
            }
        }
        let worker = m.header.workerID
        let step = m.header.step
        switch options.mode {
        case .async:
            for (name, frame) in zip(names, m.tensors) {
                frame.withUnsafeBytes {
                    variables[name]!.apply(options.optimizer, gradient: $0.bindMemory(to: Float.self))
                }
            }
            updatesApplied += 1
            lastPushed[worker] = max(lastPushed[worker] ?? 0, step)
        case .sync:
            guard step > appliedSteps else {
                throw ErrorBody(
                    code: .staleStep,
                    message: "ps \(options.name): gradient for step \(step) arrived after that step was applied")
            }
            var grads: [String: [Float]] = [:]
            for (name, frame) in zip(names, m.tensors) {
                grads[name] = frame.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            pending[step, default: [:]][worker] = grads
            lastPushed[worker] = max(lastPushed[worker] ?? 0, step)
        }
        send(identity, Envelope.frames(replyHeader(.pushed, to: m.header), Names(names: [])))
        progress()
    }

    func done(_ m: Envelope, identity: [UInt8]) throws {
        _ = try m.decode(Names.self)
        doneWorkers.insert(m.header.workerID)
        logger.info(
            "worker done",
            metadata: [
                "worker.index": "\(m.header.workerID)", "ps.done": "\(doneWorkers.count)/\(expectedWorkers ?? 0)",
            ])
        send(identity, Envelope.frames(replyHeader(.goodbye, to: m.header), Names(names: [])))
        progress()
    }

    // MARK: - Sync and staleness

    /// Applies every complete sync step and answers the pulls that became ready.
    func progress() {
        if options.mode == .sync {
            while let step = pending.keys.min(), step == appliedSteps + 1, let contributions = pending[step],
                contributions.count >= needed(forStep: step), !contributions.isEmpty
            {
                applyAveraged(contributions)
                pending[step] = nil
                appliedSteps = step
            }
        }
        var still: [(identity: [UInt8], header: Header, names: [String])] = []
        for d in deferred {
            if ready(forStep: d.header.step, worker: d.header.workerID) {
                sendValues(d.identity, header: d.header, names: d.names)
            } else {
                still.append(d)
            }
        }
        deferred = still
    }

    /// Workers whose gradient step `step` waits for: those not done, plus those done that sent one anyway.
    func needed(forStep step: UInt64) -> Int {
        let n = expectedWorkers ?? 1
        let contributors = Set(pending[step]?.keys.map { $0 } ?? [])
        return n - doneWorkers.subtracting(contributors).count
    }

    /// Sums in worker order, averages and applies once per variable.
    func applyAveraged(_ contributions: [UInt32: [String: [Float]]]) {
        let workers = contributions.keys.sorted()
        let scale = 1 / Float(workers.count)
        for name in order {
            let parts = workers.compactMap { contributions[$0]?[name] }
            guard let first = parts.first else { continue }
            var sum = first
            for p in parts.dropFirst() { for k in 0..<sum.count { sum[k] += p[k] } }
            if parts.count > 1 { for k in 0..<sum.count { sum[k] *= scale } }
            sum.withUnsafeBufferPointer { variables[name]!.apply(options.optimizer, gradient: $0) }
        }
        updatesApplied += 1
    }

    /// Whether a pull for `step` can be answered now.
    func ready(forStep step: UInt64, worker: UInt32) -> Bool {
        switch options.mode {
        case .sync:
            return step <= appliedSteps + 1
        case .async:
            guard let s = options.staleness, let n = expectedWorkers, step > UInt64(s) + 1 else { return true }
            let floor = step - 1 - UInt64(s)
            for w in 0..<UInt32(n) where !doneWorkers.contains(w) && w != worker {
                if (lastPushed[w] ?? 0) < floor { return false }
            }
            return true
        }
    }

    // MARK: - Replies

    func replyHeader(_ kind: MessageKind, to request: Header) -> Header {
        Header(
            kind: kind, workerID: request.workerID, requestID: request.requestID, step: request.step,
            incarnation: incarnation)
    }

    func sendValues(_ identity: [UInt8], header: Header, names: [String]) {
        let frames = names.map { name in
            variables[name]!.value.withUnsafeBytes { Message(copying: $0) }
        }
        var h = replyHeader(.values, to: header)
        h.step = appliedSteps
        send(identity, Envelope.frames(h, Names(names: names), tensors: frames))
    }

    func unknown(_ name: String) -> ErrorBody {
        ErrorBody(
            code: .unknownVariable,
            message:
                "ps \(options.name): no variable named \(name) is registered here; register it first (this server holds \(order.count) variables)"
        )
    }

    func reply(_ identity: [UInt8], error: ErrorBody, requestID: UInt64, workerID: UInt32) {
        errorsSent += 1
        logger.warning(
            "refused a request", metadata: ["error.code": "\(error.code.rawValue)", "error": "\(error.message)"])
        let h = Header(kind: .error, workerID: workerID, requestID: requestID, incarnation: incarnation)
        send(identity, Envelope.frames(h, error))
    }

    func send(_ identity: [UInt8], _ frames: [Message]) {
        do {
            try socket.send([Message(identity)] + frames)
        } catch {
            // The peer left (EHOSTUNREACH) or its queue is full: it is the peer's problem, not everyone's.
            logger.warning("could not answer a peer", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Checkpoint

    /// Writes `<checkpointDir>/<name>.safetensors`, keyed by the TensorFlow variable names.
    public func writeCheckpoint() throws {
        guard let dir = options.checkpointDir else { return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(options.name).safetensors"
        let tensors = order.map { (name: $0, shape: variables[$0]!.spec.shape, scalars: variables[$0]!.value) }
        try SafeTensors.write(
            tensors, to: path,
            metadata: [
                "server": options.name, "mode": options.mode.rawValue,
                "updates": "\(updatesApplied)",
            ])
        logger.info("checkpoint written", metadata: ["path": "\(path)", "variables": "\(order.count)"])
    }

    /// The current value of a variable (tests and reports).
    public func value(of name: String) -> [Float]? { variables[name]?.value }
    /// The names this server holds, in registration order.
    public var variableNames: [String] { order }
}
