import Foundation
import Logging
import ProcessSupport
import Transport
import Wire


/// Connects a `ServerCore` to a transport, a clock and a checkpoint store: requests go from the transport
/// to the rules, and the rules' effects (replies, checkpoints, exit) are carried out here.
///
/// Replies never block: when a peer's queue is full the reply is dropped and counted, and a peer that
/// stops reading (`maxDrops` drops in a row) is ignored from then on, so one slow reader cannot stall
/// the others.
public final class ServerLoop {
    public let core: ServerCore
    let transport: ServerTransport
    let store: CheckpointStore?
    let logger: Logger
    let clock: () -> Double
    var drops: [[UInt8]: Int] = [:]
    public var maxDrops = 8
    /// Called with the core at every tick (every 50 ms) and at the end (metrics), not on the request path.
    public var observe: ((ServerCore) -> Void)?
    /// With CURVE admission: whether a connection's key is still listed. Requests from a revoked key are
    /// refused (`keyRevoked`), so removing a key and sending SIGHUP cuts off a live worker.
    public var admits: ((String) -> Bool)?
    /// The authorized-keys file, for the refusal's message.
    public var keysFile = ""
    public private(set) var lastCheckpoint: (path: String, seconds: Double, at: Double)?
    /// Periodic checkpoints that failed (`ps_checkpoint_failures_total`).
    public private(set) var checkpointFailures = 0
    /// Failed periodic checkpoints are retried after 1 s, 2 s, 4 s... up to `--checkpoint-secs`, not every tick.
    public var checkpointRetry: Backoff

    public init(
        core: ServerCore, transport: ServerTransport, store: CheckpointStore?, logger: Logger,
        clock: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime }
    ) {
        self.core = core
        self.transport = transport
        self.store = store
        self.logger = logger
        self.clock = clock
        checkpointRetry = Backoff(initial: 1, maximum: core.config.checkpointSeconds ?? 60)
    }

    /// A wait that overran its timeout, or a turn's work that took, longer than this is a pause or a stall.
    static let stallBound = 1.0
    /// How often the open descriptors are counted against the limit.
    static let fileCheckSeconds = 5.0

    /// At the open-file limit libzmq cannot accept a connection and retries at once, a core spinning with no
    /// word in the log (raw TCP connections that never complete a handshake hold their descriptors until
    /// libzmq's handshake interval drops them). Counting the descriptors says so, bounded like any warning.
    func checkOpenFiles(now: Double) {
        let limit = FileLimit.current
        guard limit < Int.max / 2, let open = FileLimit.openCount(), open * 10 >= limit * 9 else { return }
        guard core.mayWarn("open files near the limit", now: now) else { return }
        logger.warning(
            "\(open) of the \(limit) open files this process may hold (ulimit -n) are in use: new connections fail at the limit, and libzmq retries them on a busy core; raise the limit (or find who holds this many connections)",
            metadata: ["files.open": "\(open)", "files.limit": "\(limit)"])
    }

    /// Serves until the rules say every worker is finished (unless `keepServing`) or `stop` is requested,
    /// then writes the final checkpoint and closes the transport.
    ///
    /// The server's own absence is nobody's silence. Heartbeats sent while it was stopped (SIGSTOP), starved
    /// or busy are still queued unread, and judged before they are read every worker would look silent (a
    /// paused server once declared them all lost on waking and ended the job). Two cases:
    /// - a wait for requests that overran its timeout by more than `stallBound`: nothing was read meanwhile,
    ///   so that time is excused exactly (`ServerCore.excuse`);
    /// - a turn whose own work (requests, a checkpoint) took longer, or a stop that landed in it: silence is
    ///   not judged until the queue has been read empty, or for `--worker-timeout` at most (a server that never
    ///   catches up is overloaded, and must still find dead workers).
    /// - Throws: `CheckpointError` when the final checkpoint cannot be written.
    public func run(stop: StopFlag) throws {
        var lastTick = -Double.infinity
        var lastTurn: Double?
        var waitedLastTurn = 0.0
        var undrainedSince: Double?
        var lastFileCheck = -Double.infinity
        var exitReason: String?
        serving: while exitReason == nil {
            if stop.isRequested {
                exitReason = "stop requested"
                break
            }
            let now = clock()
            if let last = lastTurn, now - last - waitedLastTurn > Self.stallBound, undrainedSince == nil {
                undrainedSince = now
                if core.mayWarn("a long turn", now: now) {
                    logger.warning(
                        "the server did not read requests for a while (busy, stopped or starved); silence is judged once the queue is read",
                        metadata: ["stalled.seconds": "\(String(format: "%.1f", now - last - waitedLastTurn))"])
                }
            }
            lastTurn = now
            waitedLastTurn = 0
            if now - lastTick >= 0.05 {
                lastTick = now
                let judge = undrainedSince.map { now - $0 >= core.config.workerTimeout } ?? true
                if let reason = perform(core.tick(now: now, judgeSilence: judge)) { exitReason = reason }
                let refused = transport.drainRefusals()
                for r in refused where core.mayWarn("refused a peer at the door", now: now) {
                    logger.warning("refused a peer at the door", metadata: ["peer.key": "\(r.key)", "peer.address": "\(r.address)"])
                }
                if !refused.isEmpty { core.countRefused(refused.count) }
                for o in transport.drainOversized() {
                    // More parts or bytes than any valid request: dropped whole before any per-frame work, and the
                    // peer ignored from now on.
                    core.countOversized()
                    core.shun(o.peer)
                    guard core.mayWarn("dropped a message larger than any request", now: now) else { continue }
                    logger.warning(
                        "dropped a message larger than any request, and ignoring its peer",
                        metadata: ["peer": "\(o.peer)", "parts": "\(o.parts)", "bytes": "\(o.bytes)"])
                }
                observe?(core)
            }
            if now - lastFileCheck >= Self.fileCheckSeconds {
                lastFileCheck = now
                checkOpenFiles(now: now)
            }
            // Take every request that is waiting, then tick again.
            var budget = 64
            var timeout = 0.05
            while budget > 0, exitReason == nil {
                budget -= 1
                let received: (peer: Peer, frames: [Frame])?
                do {
                    let started = clock()
                    received = try transport.receive(timeout: timeout)
                    let waited = clock() - started
                    waitedLastTurn += waited
                    if waited > timeout + Self.stallBound { core.excuse(stalled: waited - timeout) }
                } catch {
                    logger.error("receiving failed; serving stops", metadata: ["error": "\(error)"])
                    exitReason = "the transport failed: \(error)"
                    break serving
                }
                guard let (peer, frames) = received else {
                    undrainedSince = nil
                    break
                }
                timeout = 0
                if let admits, let key = peer.key, !admits(key) {
                    refuseRevoked(peer, frames, key: key)
                    continue
                }
                if let reason = perform(core.receive(frames, from: peer, now: clock())) { exitReason = reason }
            }
        }
        logger.info("stopping", metadata: ["reason": "\(exitReason ?? "")"])
        defer { transport.close(lingerSeconds: 2) }
        try checkpoint(reason: "final")
        observe?(core)
    }

    /// Answers a request from a connection whose key was taken out of the authorized keys.
    func refuseRevoked(_ peer: Peer, _ frames: [Frame], key: String) {
        let header = frames.first.flatMap { f in f.withUnsafeBytes { try? Header(decoding: $0) } }
        let error = ErrorBody(
            code: .keyRevoked,
            message:
                "ps \(core.config.name): this worker's CURVE key \(key) is no longer in --curve-authorized-keys \(keysFile) (revoked); nothing it sends is served")
        core.countRevoked()
        logger.warning("refused a request from a revoked key", metadata: ["peer.key": "\(key)", "peer": "\(peer)"])
        let reply = Envelope.frames(
            Header(kind: .error, workerID: header?.workerID ?? 0, requestID: header?.requestID ?? 0, incarnation: core.incarnation), error)
        _ = transport.send(reply, to: peer)
    }

    /// Carries out effects; returns an exit reason if one asks to stop.
    func perform(_ effects: [Effect]) -> String? {
        var reason: String?
        for e in effects {
            switch e {
            case .send(let frames, let peer):
                switch transport.send(frames, to: peer) {
                case .sent: drops[peer.id] = nil
                case .unreachable: core.countDroppedReply()
                case .queueFull:
                    core.countDroppedReply()
                    let n = (drops[peer.id] ?? 0) + 1
                    drops[peer.id] = n
                    logger.warning("a peer does not read its replies: reply dropped", metadata: ["peer": "\(peer)", "drops": "\(n)"])
                    if n >= maxDrops {
                        core.shun(peer)
                        logger.warning("ignoring a peer that stopped reading", metadata: ["peer": "\(peer)"])
                    }
                }
            case .checkpoint(let why):
                let now = clock()
                guard checkpointRetry.allows(now: now) else { continue }
                do {
                    try checkpoint(reason: why)
                    checkpointRetry.succeeded()
                } catch {
                    checkpointFailures += 1
                    let wait = checkpointRetry.failed(now: now)
                    logger.error(
                        "periodic checkpoint failed; retrying in \(wait) s",
                        metadata: ["error": "\(error)", "failures": "\(checkpointFailures)"])
                }
            case .exit(let why):
                logger.info("\(why)")
                reason = why
            }
        }
        return reason
    }

    /// Writes a checkpoint now (if there is a store and something to save).
    /// - Throws: `CheckpointError` naming the file or the reason, also when the checkpoint is skipped
    ///   because this server holds fewer variables than its newest file (a failure, not a warning: at the
    ///   end it makes the exit status 1, and periodic ones back off).
    public func checkpoint(reason: String) throws {
        guard let store else { return }
        let started = clock()
        let state = core.snapshot()
        if let path = try store.write(state, config: core.config) {
            let now = clock()
            core.checkpointWritten(now: now)
            lastCheckpoint = (path, now - started, now)
            logger.info(
                "checkpoint written",
                metadata: [
                    "path": "\(path)", "variables": "\(state.variables.count)", "updates": "\(state.updates)",
                    "reason": "\(reason)",
                ])
        } else if !state.variables.isEmpty {
            throw CheckpointError.write(
                store.directory,
                reason:
                    "skipped: this server holds \(state.variables.count) variables, fewer than the \(store.newestVariableCount) of its newest checkpoint")
        }
    }
}
