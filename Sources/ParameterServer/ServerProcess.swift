import Foundation
import Logging
import ProcessSupport
import Telemetry
import Transport
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
    case bind(endpoint: String, error: String)
    case admission(AdmissionError)
    /// `--metrics-port` taken or unusable: a bad command line (exit 64).
    case metrics(MetricsEndpointError)

    public var description: String {
        switch self {
        case .checkpoint(let e): return "\(e)"
        case .bind(let endpoint, let error): return "cannot listen on \(endpoint): \(error)"
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
            let context = try Context()
            let admission: Admission?
            do {
                admission = try launch.authorizedKeysFile.map { try Admission(path: $0) }
            } catch let e as AdmissionError {
                throw ServerStartError.admission(e)
            }
            let transport: ZeroMQServerTransport
            var settings = ZeroMQServerSettings(endpoint: launch.endpoint)
            settings.maxMessageBytes = launch.maxMessageBytes
            config.limits.maxFrameBytes = Int(launch.maxMessageBytes)
            settings.curveSecretKey = launch.curveSecretKey
            settings.admission = admission
            do {
                transport = try ZeroMQServerTransport(settings, context: context)
            } catch let e as ZMQError {
                throw ServerStartError.bind(endpoint: launch.endpoint, error: "\(e.reason) (errno \(e.errno))")
            }
            let port = transport.boundEndpoint.split(separator: ":").last.map(String.init) ?? ""
            if config.name.isEmpty { config.name = "ps-\(port)" }
            var store: CheckpointStore?
            var restored: ServerState?
            if let dir = launch.checkpointDir {
                do {
                    let s = try CheckpointStore(directory: dir, name: config.name, keep: launch.keepCheckpoints)
                    if let (state, path) = try s.newest() {
                        restored = state
                        logger.info(
                            "restored \(state.variables.count) variables at update \(state.updates) from \(path)",
                            metadata: ["ps.step": "\(state.syncStep)"])
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
            if launch.metricsPort != nil {
                let metrics = ServerMetrics()
                loop.observe = { [unowned loop] core in
                    metrics.observe(core, lastCheckpoint: loop.lastCheckpoint, now: clock())
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
                        logger.error("authorized keys not reloaded; the old ones stay in force", metadata: ["error": "\(error)"])
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
            try loop.run(stop: stop)
            let c = core.counters
            logger.info(
                "stopped",
                metadata: [
                    "updates": "\(core.updates)", "errors": "\(c.errorsTotal)", "duplicates": "\(c.duplicatePushes)",
                    "late": "\(c.lateGradients)", "lost": "\(c.workersLost)", "refused": "\(c.refusedPeers)",
                ])
            context.terminate()
            return .success
        } catch let e as ServerStartError {
            logger.error("\(e)")
            switch e {
            case .checkpoint(.corrupt): return .dataError
            case .admission, .metrics: return .usage
            default: return .failure
            }
        } catch {
            logger.error("ps-server failed: \(error)")
            return .failure
        }
    }
}
