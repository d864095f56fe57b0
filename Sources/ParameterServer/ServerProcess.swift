import Foundation
import Logging
import ProcessSupport
import Telemetry
import Transport
import Wire
import ZeroMQ

/// Everything `ps-server` needs beyond the rules: where to listen, where to keep checkpoints, keys.
public struct ServerLaunch: Sendable {
    public var config: ServerConfig
    /// e.g. `tcp://0.0.0.0:2222`.
    public var endpoint: String
    /// Written with the bound port once listening (harnesses and tests).
    public var portFile: String?
    public var checkpointDir: String?
    public var keepCheckpoints = 3
    /// `--strict-restore`: a damaged newest checkpoint is an error (exit 65), not a fall back to an older one.
    public var strictRestore = false
    public var maxMessageBytes: Int64 = 256 << 20
    public var curveSecretKey: [UInt8]?
    /// `--curve-authorized-keys`: admit only these client keys.
    public var authorizedKeysFile: String?
    /// `--metrics-port`: serve /metrics, /healthz and /readyz over HTTP on this address and port.
    public var metricsPort: Int?
    public var metricsBind = "127.0.0.1"

    public init(config: ServerConfig, endpoint: String) {
        self.config = config
        self.endpoint = endpoint
    }
}

/// Why a server could not start; the executable maps each to an exit status.
public enum ServerStartError: Error, CustomStringConvertible {
    case checkpoint(CheckpointError)
    case bind(endpoint: String, error: String, errno: Int32)
    case admission(AdmissionError)
    /// `--metrics-port` taken or unusable: a bad command line (exit 64).
    case metrics(MetricsEndpointError)

    public var description: String {
        switch self {
        case .checkpoint(let e): return "\(e)"
        case .bind(let endpoint, let error, _):
            return "cannot listen on \(endpoint): \(error); choose another --port (or --bind), or stop what holds it"
        case .admission(let e): return "\(e)"
        case .metrics(let e): return "\(e)"
        }
    }
}

/// The `ps-server` process: restore, bind, serve until done or signalled, checkpoint, exit.
public enum ServerProcess {
    /// Runs a server to its end.
    /// - Returns: the exit status (0 when it stopped cleanly with its checkpoint written).
    public static func run(_ launch: ServerLaunch, logger: Logger) -> ExitStatus {
        var config = launch.config
        let clock = { ProcessInfo.processInfo.systemUptime }
        let readiness = Readiness()
        var endpoint: MetricsEndpoint?
        defer { endpoint?.stop() }
        do {
            if let port = launch.metricsPort {
                let registry = Telemetry.bootstrap()
                do {
                    endpoint = try MetricsEndpoint(
                        bind: launch.metricsBind, port: port, registry: registry, readiness: readiness, logger: logger)
                } catch let e as MetricsEndpointError {
                    throw ServerStartError.metrics(e)
                }
            }
            // Two connections per worker (requests and heartbeats), the checkpoint files and the metrics clients:
            // raise the open-file limit that far where the hard limit allows, and say so where it does not.
            // Warned of only for a job of known size: --max-workers' default (1,024) is a bound, not a plan.
            let files = 2 * config.limits.maxWorkers + 256
            let fileLimit = FileLimit.raise(toAtLeast: files)
            if let n = config.numWorkers, 2 * n + 64 > fileLimit {
                logger.warning(
                    "the open-file limit (ulimit -n) is \(fileLimit), below what \(n) workers need (two connections each, and files): past it new connections fail; raise the limit",
                    metadata: ["files.limit": "\(fileLimit)", "workers": "\(n)"])
            }
            let context = try Context()
            let admission: Admission?
            do {
                admission = try launch.authorizedKeysFile.map { try Admission(path: $0) }
            } catch let e as AdmissionError {
                throw ServerStartError.admission(e)
            }
            let transport: ZeroMQServerTransport
            var settings = ZeroMQServerSettings(endpoint: launch.endpoint)
            // Tensors are cut to --max-message-bytes; a body must fit one frame whatever it says.
            settings.maxMessageBytes = Int64(Body.frameLimit(Int(launch.maxMessageBytes)))
            config.limits.maxFrameBytes = Int(launch.maxMessageBytes)
            settings.curveSecretKey = launch.curveSecretKey
            settings.admission = admission
            // No valid request has more bytes than a registration's body or a push of every variable this server
            // can hold (values are a third of the bytes held with their two optimizer slots), nor more parts than
            // a header, a body, a frame per name and the chunks of those bytes in frames of this server's limit.
            settings.maxBytesPerMessage = max(Body.defaultLimit, config.limits.maxTotalBytes / 3) + (16 << 20)
            let chunks = settings.maxBytesPerMessage / max(1024, config.limits.maxFrameBytes) + 1
            settings.maxPartsPerMessage = 1 + 2 + config.limits.maxNamesPerRequest + min(chunks, 1 << 22)
            do {
                transport = try ZeroMQServerTransport(settings, context: context)
            } catch let e as ZMQError {
                throw ServerStartError.bind(endpoint: launch.endpoint, error: "\(e.reason) (errno \(e.errno))", errno: e.errno)
            }
            let port = transport.boundEndpoint.split(separator: ":").last.map(String.init) ?? ""
            if config.name.isEmpty { config.name = "ps-\(port)" }
            var store: CheckpointStore?
            var restored: ServerState?
            if let dir = launch.checkpointDir {
                do {
                    let s = try CheckpointStore(directory: dir, name: config.name, keep: launch.keepCheckpoints)
                    s.limits = config.limits
                    if let r = try s.restore(limits: config.limits, strict: launch.strictRestore) {
                        for skipped in r.skipped {
                            logger.warning(
                                "checkpoint \(skipped.path) cannot be restored: \(skipped.reason); using the older \(r.path) instead (the updates after it are lost; --strict-restore refuses)",
                                metadata: ["damaged": "\(skipped.path)", "restoring": "\(r.path)"])
                        }
                        if !r.checksumVerified {
                            logger.warning(
                                "checkpoint \(r.path) carries no checksum (written by an older version): damage to it cannot be detected",
                                metadata: ["path": "\(r.path)"])
                        }
                        let (state, warnings) = r.adapted(to: config)
                        for w in warnings { logger.warning("\(w)", metadata: ["path": "\(r.path)"]) }
                        restored = state
                        logger.info(
                            "restored \(r.state.variables.count) variables at update \(r.state.updates) from \(r.path)",
                            metadata: ["ps.step": "\(r.state.syncStep)"])
                    }
                    store = s
                } catch let e as CheckpointError {
                    throw ServerStartError.checkpoint(e)
                }
            }
            let core = ServerCore(
                config: config, incarnation: UInt64.random(in: 1...UInt64.max), restored: restored, now: clock(),
                logger: logger)
            let loop = ServerLoop(core: core, transport: transport, store: store, logger: logger, clock: clock)
            if let admission {
                // Revocation: a key taken out of the file (and SIGHUP) stops its live connections too; ZAP alone
                // would only keep it from connecting again.
                loop.admits = { admission.stillAdmits($0) }
                loop.keysFile = admission.path
            }
            if launch.metricsPort != nil {
                let metrics = ServerMetrics()
                loop.observe = { [unowned loop] core in
                    metrics.observe(core, lastCheckpoint: loop.lastCheckpoint, now: clock())
                    metrics.observeCheckpointFailures(loop.checkpointFailures)
                }
            }
            if let portFile = launch.portFile {
                try (port + "\n").write(toFile: portFile + ".tmp", atomically: true, encoding: .utf8)
                _ = rename(portFile + ".tmp", portFile)
            }
            let stop = StopFlag()
            let handlers = SignalHandlers([SIGTERM, SIGINT, SIGHUP]) { sig in
                if sig == SIGHUP {
                    do {
                        try admission?.reload()
                        logger.info("authorized keys reloaded", metadata: ["keys": "\(admission?.count ?? 0)"])
                    } catch {
                        logger.warning("authorized keys not reloaded; the old ones stay in force", metadata: ["error": "\(error)"])
                    }
                } else {
                    logger.info("signal received, stopping", metadata: ["signal": "\(signalName(sig))"])
                    stop.request()
                }
            }
            defer { handlers.cancel() }
            logger.info(
                "serving",
                metadata: [
                    "ps.endpoint": "\(transport.boundEndpoint)", "ps.mode": "\(config.mode.rawValue)",
                    "ps.optimizer": "\(config.optimizer)", "ps.curve": "\(launch.curveSecretKey != nil)",
                    "ps.admission": "\(admission.map { "\($0.count) keys" } ?? "any")",
                ])
            readiness.set(true)
            do { try loop.run(stop: stop) } catch let e as CheckpointError {
                logger.error(
                    "the final checkpoint was not written: \(e); the updates since the last checkpoint are lost",
                    metadata: ["updates": "\(core.updates)"])
                context.terminate()
                return .failure
            }
            let c = core.counters
            logger.info(
                "stopped",
                metadata: [
                    "updates": "\(core.updates)", "errors": "\(c.errorsTotal)", "duplicates": "\(c.duplicatePushes)",
                    "late": "\(c.lateGradients)", "lost": "\(c.workersLost)", "refused": "\(c.refusedPeers)",
                ])
            // What the state needs: values and optimizer slots, and the staged update (the same again: an update
            // is checked whole before any of it is kept).
            let values = core.valueBytes
            logger.info(
                "memory: \(core.variableNames.count) variables, \(values) value bytes; state with optimizer slots and staging \(ProcessMemory.megabytes(values * 6)); peak RSS \(ProcessMemory.megabytes(ProcessMemory.peakResidentBytes()))",
                metadata: ["value.bytes": "\(values)"])
            context.terminate()
            return .success
        } catch let e as ServerStartError {
            logger.error("\(e)")
            switch e {
            case .checkpoint(.corrupt): return .dataError
            case .admission, .metrics: return .usage
            // A port that is taken or an address this host does not have is the command line's to change,
            // as for --metrics-port: a bad command line, not a failure a restart would fix.
            case .bind(_, _, let errno) where errno == EADDRINUSE || errno == EADDRNOTAVAIL:
                return .usage
            default: return .failure
            }
        } catch {
            logger.error("ps-server failed: \(error)")
            return .failure
        }
    }
}
