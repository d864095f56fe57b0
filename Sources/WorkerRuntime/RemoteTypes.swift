import Foundation
import Wire

/// Why talking to the parameter servers failed; each case names the server and what was awaited.
public enum RemoteError: Error, CustomStringConvertible {
    /// A reply took longer than `--timeout`; `answering` says whether the server still answered pings lately.
    case timeout(server: String, position: Int, of: Int, waitingFor: String, seconds: Double, answering: Bool)
    /// Nothing at all came back from a server this worker has never reached (it is not running, or not yet).
    case noAnswer(server: String, position: Int, of: Int, seconds: Double, hint: String)
    /// The servers say this task index finished its training: nothing is left for this process to do.
    case alreadyDone(server: String, message: String)
    case refused(server: String, what: String, error: ErrorBody)
    case lost(server: String, seconds: Double, attempts: Int, hint: String)
    case keyRefused(server: String, reason: String)
    case unexpectedReply(server: String, what: String, got: String)
    case badEndpoint(String)
    /// Recovering one wait's requests took past `--recovery-timeout`: the server kept going away or restarting.
    case recoveryTimedOut(server: String, seconds: Double, recoveries: Int, cause: String)
    /// The servers refused this many pushes in a row (`--max-refused-pushes`).
    case refusedPushes(server: String, count: Int, last: ErrorBody)
    /// The worker was told to stop (a signal) while a server was away: it stops instead of recovering.
    case stoppedWhileAway(server: String)

    public var description: String {
        switch self {
        case .timeout(let s, let i, let n, let w, let secs, let answering):
            return String(
                format: "timed out after %.0f s waiting for ps %@ (%d of %d servers) to %@; %@", secs, s, i, n, w,
                answering
                    ? "it answers pings, so it is alive but slow (a sync step waiting for other workers?)"
                    : "it has not answered pings either (is it still running?)")
        case .noAnswer(let s, let i, let n, let secs, let hint):
            return String(
                format:
                    "no answer from ps %@ (%d of %d servers) within %.0f s (--timeout): no server is running there, or it is not reachable, or the job's servers have already finished and exited%@; it may yet come back, so this exit is retryable",
                s, i, n, secs, hint)
        case .alreadyDone(_, let message):
            return "nothing to do: \(message)"
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
        case .recoveryTimedOut(let s, let secs, let n, let cause):
            return String(
                format:
                    "gave up on ps %@ after %.0f s of recovering one round of requests (%d recoveries; the last because %@): it keeps going away or restarting (--recovery-timeout)",
                s, secs, n, cause)
        case .refusedPushes(let s, let n, let last):
            return "ps \(s) refused \(n) pushes in a row (--max-refused-pushes); the last: \(last.message)"
        case .stoppedWhileAway(let s):
            return "stopped by a signal while ps \(s) was not answering (it may have been stopped too); not recovering it"
        }
    }

    /// Whether trying again later may succeed (a lost peer) rather than never (a refusal, a conflict).
    public var isRetryable: Bool {
        switch self {
        case .lost, .timeout, .noAnswer, .recoveryTimedOut: return true
        case .refused, .keyRefused, .unexpectedReply, .badEndpoint, .alreadyDone, .refusedPushes, .stoppedWhileAway:
            return false
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
    /// Pushes the servers refused (a non-finite gradient, say) and that were skipped.
    public var refusedPushes = 0
    /// Sync steps this worker's gradients were part of that a server dropped as non-finite.
    public var droppedSyncSteps = 0
    /// Connections the servers no longer knew (after a pause or a reconnect), bound again by a hello.
    public var rebinds = 0
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
    /// Seconds between heartbeats, sent from a thread of their own whatever the worker is doing.
    public var heartbeat: Double = 1
    /// Seconds without any word from a server before it is counted lost and reconnected.
    public var lostAfter: Double = 4
    /// Seconds that recovering one round of requests may take, however many times the server goes away or
    /// restarts meanwhile; then the worker gives up (exit 138).
    public var recoveryTimeout: Double = 300
    /// Pushes refused in a row before the worker gives up; a refused push is skipped and counted.
    public var maxRefusedPushes = 10
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
    /// How this worker partitions its variables (`Hello.partitioning`; `none` without a partitioner).
    public var partitioning = "none"
    /// The model's description for the servers to record in their checkpoints (`Hello.model`).
    public var model: String?
    /// Offer to send and take each message's tensors packed in one frame (`Hello.packed`); a server that
    /// agrees gets them so, others a frame per tensor.
    public var packed = true
    /// The largest frame this worker's connections take (its ZeroMQ message limit), told to servers so
    /// that they pack values only up to it and send a larger tensor in chunks.
    public var maxFrameBytes = 256 << 20

    public init(taskIndex: Int, numWorkers: Int, seed: UInt64) {
        self.taskIndex = taskIndex
        self.numWorkers = numWorkers
        self.seed = seed
    }
}

