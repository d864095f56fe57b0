import ArgumentParser
import Foundation
import Logging
import Optimizers
import ParameterServer
import ProcessSupport
import Transport
import Wire
import ZeroMQ

extension SyncMode: ExpressibleByArgument {}
extension OptimizerConfig.Kind: ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}

/// `ps-server`: a parameter-server process that owns scoped variables and their optimizer state.
/// It parses and checks options (and `TF_CONFIG`), then hands a typed launch to `ServerProcess`.
struct PSServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps-server",
        abstract: "Serve model variables to workers over ZeroMQ and apply their gradients.",
        discussion: """
            With TF_CONFIG set (task type ps), the port comes from cluster.ps[index], the address to bind \
            defaults to 0.0.0.0, and the worker count from the chief and worker lists; flags override it.
            Exit codes: 0 success, 64 bad usage or TF_CONFIG, 65 corrupt checkpoint, 1 other failures.
            """)

    @Option(help: "TCP port to listen on; 0 picks a free one (see --port-file).") var port: Int?
    @Option(help: "Address to bind (127.0.0.1 by default; 0.0.0.0 under TF_CONFIG).") var bind: String?
    @Option(help: "Write the port actually bound to this file once listening.") var portFile: String?
    @Option(help: "sync (average every worker's gradient of a step, apply once) or async.") var mode: SyncMode = .async
    @Option(help: "Async only: how many steps a worker may run ahead of the slowest one.") var staleness: Int?
    @Option(help: "Sync only: apply a step once all but this many workers have pushed it.") var backupWorkers = 0
    @Option(help: "The job's worker count (otherwise the first hello fixes it).") var numWorkers: Int?
    @Option(help: "sgd, momentum or adam.") var optimizer: OptimizerConfig.Kind = .adam
    @Option(help: "Learning rate.") var learningRate: Float = 1e-3
    @Option(help: "Momentum coefficient (momentum optimizer).") var momentum: Float = 0.9
    @Option(help: "Adam's beta1.") var beta1: Float = 0.9
    @Option(help: "Adam's beta2.") var beta2: Float = 0.999
    @Option(help: "Adam's epsilon.") var epsilon: Float = 1e-8
    @Option(help: "Clip each push's gradient to this global norm (over this server's variables).") var clipNorm: Float?
    @Option(help: "Keep checkpoints here (restored from on start); written periodically, on SIGTERM and at the end.")
    var checkpointDir: String?
    @Option(help: "Checkpoint every this many applied updates.") var checkpointEvery: Int?
    @Option(help: "Checkpoint at least this often, in seconds, while updates are applied.") var checkpointSecs: Double = 60
    @Option(help: "Checkpoint files kept per server.") var keepCheckpoints = 3
    @Flag(help: "Refuse to start (exit 65) when the newest checkpoint is damaged, instead of restoring an older one.")
    var strictRestore = false
    @Option(help: "Seconds of silence before a worker is declared lost (3 at least: workers send a heartbeat every second).") var workerTimeout: Double = 30
    @Option(help: "This server's name in logs and checkpoint files (default ps-<port>, or ps-<index> under TF_CONFIG).")
    var name: String?
    @Flag(help: "Keep serving after every worker is done (stop with SIGTERM or Ctrl-C).") var keepServing = false
    @Option(help: "Largest tensor frame taken, in bytes; larger tensors travel in chunks that fit (a message's JSON body may be up to 4 MiB whatever this is).") var maxMessageBytes: Int64 = 256 << 20
    @Option(help: "Largest variable, in elements.") var maxVariableElements = ServerLimits().maxVariableElements
    @Option(help: "Bytes of variables and optimizer slots held in all.") var maxTotalBytes = ServerLimits().maxTotalBytes
    @Option(help: "Variables this server may hold.") var maxVariables = ServerLimits().maxVariables
    @Option(help: "Variable names in one request.") var maxNamesPerRequest = ServerLimits().maxNamesPerRequest
    @Option(help: "Workers in one job.") var maxWorkers = ServerLimits().maxWorkers
    @Option(help: "Encrypt with CURVE: a file holding this server's Z85 secret key.") var curveSecretFile: String?
    @Option(help: "Admit only the CURVE client keys listed in this file (one Z85 key per line; re-read on SIGHUP).")
    var curveAuthorizedKeys: String?
    @Flag(help: "Allow plaintext on a non-loopback address (anyone who reaches the port can push).")
    var insecurePlaintext = false
    @Option(help: "Write a new CURVE key pair to PREFIX.secret and PREFIX.public, then exit.") var generateCurveKeys: String?
    @Option(help: "text or json (one object per line).") var logFormat: LogFormat = .text
    @Option(help: "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on this port.") var metricsPort: Int?
    @Option(help: "Address for --metrics-port (127.0.0.1; 0.0.0.0 under TF_CONFIG).") var metricsBind: String?

    /// `TF_CONFIG`, read once.
    var cluster: ClusterSpec? {
        get throws {
            do { return try ClusterSpec.fromEnvironment() } catch let e as ClusterSpecError { throw ValidationError("\(e)") }
        }
    }

    func validate() throws {
        if generateCurveKeys != nil { return }
        let spec = try cluster
        if let spec {
            guard spec.taskType == .ps else {
                throw ValidationError("TF_CONFIG: task.type is \(spec.taskType.rawValue); ps-server runs ps tasks (use worker)")
            }
        }
        guard port != nil || spec != nil else { throw ValidationError("Missing expected argument '--port <port>' (or TF_CONFIG)") }
        if let port { guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") } }
        if let b = bind, let problem = ipv6Problem(b) { throw ValidationError("--bind \(b) \(problem)") }
        if let b = bind { guard isBindableAddress(b) else { throw ValidationError("--bind: cannot bind \(b): not an address") } }
        if let spec, spec.numWorkers > maxWorkers {
            throw ValidationError(
                "TF_CONFIG: the cluster lists \(spec.numWorkers) workers (chief and worker), more than --max-workers \(maxWorkers): raise --max-workers or list fewer workers"
            )
        }
        if let s = staleness {
            guard (0...1_000_000).contains(s) else { throw ValidationError("--staleness must be in 0...1000000, got \(s)") }
            guard mode == .async else { throw ValidationError("--staleness applies to --mode async only") }
        }
        guard (0...maxWorkers).contains(backupWorkers) else {
            throw ValidationError("--backup-workers must be in 0...\(maxWorkers), got \(backupWorkers)")
        }
        if backupWorkers > 0 && mode != .sync { throw ValidationError("--backup-workers applies to --mode sync only") }
        if let n = numWorkers { guard (1...maxWorkers).contains(n) else { throw ValidationError("--num-workers must be in 1...\(maxWorkers), got \(n)") } }
        if let problem = optimizerConfig.problem { throw ValidationError(problem) }
        if let c = clipNorm { guard c.isFinite, c > 0 else { throw ValidationError("--clip-norm must be a positive finite number, got \(c)") } }
        if let e = checkpointEvery { guard e >= 1 else { throw ValidationError("--checkpoint-every must be at least 1, got \(e)") } }
        guard checkpointSecs.isFinite, checkpointSecs > 0, checkpointSecs <= 86_400 else {
            throw ValidationError("--checkpoint-secs must be in (0, 86400], got \(checkpointSecs)")
        }
        guard (1...1000).contains(keepCheckpoints) else { throw ValidationError("--keep-checkpoints must be in 1...1000, got \(keepCheckpoints)") }
        // Workers send a heartbeat every second: a timeout of one or two periods loses a worker to one late
        // heartbeat (a scheduling hiccup), so three periods is the least that means silence.
        guard workerTimeout.isFinite, workerTimeout >= 3, workerTimeout <= 86_400 else {
            throw ValidationError(
                "--worker-timeout must be in [3, 86400] seconds (workers send a heartbeat every second; less than three periods loses a worker to one late heartbeat), got \(workerTimeout)")
        }
        guard (1024...(4 << 30)).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes must be in 1024...\(4 << 30), got \(maxMessageBytes)")
        }
        for (flag, v, hi) in [
            ("--max-variable-elements", maxVariableElements, 1 << 32), ("--max-total-bytes", maxTotalBytes, 1 << 40),
            ("--max-variables", maxVariables, 1 << 20), ("--max-names-per-request", maxNamesPerRequest, 1 << 20),
            ("--max-workers", maxWorkers, 1 << 16),
        ] where !(1...hi).contains(v) {
            throw ValidationError("\(flag) must be in 1...\(hi), got \(v)")
        }
        if let problem = metricsOptionsProblem(port: metricsPort, bind: metricsBind) { throw ValidationError(problem) }
        // The name is part of checkpoint file names (<name>-<8 digits>.safetensors): a path or odd bytes in it
        // would write elsewhere or be reported as an unwritable directory.
        if let name {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".utf8)
            guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy(allowed.contains), name.first != "." else {
                throw ValidationError(
                    "--name must be 1 to 64 letters, digits, '.', '_' or '-' (not starting with '.'): it names the checkpoint files; got '\(name.prefix(80))'")
            }
        }
        // The port served: --port, or this task's address in TF_CONFIG.
        let served = port ?? spec.flatMap { ClusterSpec.port(of: $0.ownAddress) }
        if let metricsPort, metricsPort != 0, metricsPort == served {
            throw ValidationError(
                "--metrics-port \(metricsPort) is the port this server listens on (\(port != nil ? "--port" : "TF_CONFIG's address for this task")): give the metrics endpoint a port of its own")
        }
        if curveAuthorizedKeys != nil && curveSecretFile == nil {
            throw ValidationError("--curve-authorized-keys needs --curve-secret-file (admission works on CURVE keys)")
        }
        let address = bind ?? (spec != nil ? "0.0.0.0" : "127.0.0.1")
        if !isLoopback(address) && curveSecretFile == nil && !insecurePlaintext {
            throw ValidationError(
                "refusing to serve plaintext on \(address): anyone who reaches it could push gradients. Use --curve-secret-file (and --curve-authorized-keys), or --insecure-plaintext to accept the risk"
            )
        }
    }

    var optimizerConfig: OptimizerConfig {
        OptimizerConfig(kind: optimizer, learningRate: learningRate, momentum: momentum, beta1: beta1, beta2: beta2, epsilon: epsilon)
    }

    func run() throws {
        bootstrapLogging(logFormat)
        let logger = Logger(label: "ps-server")
        if let prefix = generateCurveKeys {
            try writeKeyPair(prefix: prefix)
            return
        }
        let spec = try cluster
        let address = bind ?? (spec != nil ? "0.0.0.0" : "127.0.0.1")
        let listenPort = port ?? spec.flatMap { ClusterSpec.port(of: $0.ownAddress) } ?? 0
        if !isLoopback(address) && curveSecretFile == nil {
            logger.warning("serving plaintext on a non-loopback address (--insecure-plaintext): anyone who reaches it can push")
        }
        var config = ServerConfig(
            name: name ?? spec.map { "ps-\($0.taskIndex)" } ?? "", mode: mode, staleness: staleness,
            optimizer: optimizerConfig)
        config.backupWorkers = backupWorkers
        config.numWorkers = numWorkers ?? spec.map(\.numWorkers).flatMap { $0 > 0 ? $0 : nil }
        config.workerTimeout = workerTimeout
        config.checkpointEvery = checkpointEvery
        config.checkpointSeconds = checkpointSecs
        config.keepServing = keepServing
        config.clipNorm = clipNorm
        config.limits.maxVariableElements = maxVariableElements
        config.limits.maxTotalBytes = maxTotalBytes
        config.limits.maxVariables = maxVariables
        config.limits.maxNamesPerRequest = maxNamesPerRequest
        config.limits.maxWorkers = maxWorkers
        var launch = ServerLaunch(config: config, endpoint: "tcp://\(address):\(listenPort == 0 ? "*" : String(listenPort))")
        launch.portFile = portFile
        launch.checkpointDir = checkpointDir
        launch.keepCheckpoints = keepCheckpoints
        launch.strictRestore = strictRestore
        launch.maxMessageBytes = maxMessageBytes
        launch.authorizedKeysFile = curveAuthorizedKeys
        launch.metricsPort = metricsPort
        launch.metricsBind = metricsBind ?? (spec != nil ? "0.0.0.0" : "127.0.0.1")
        if let file = curveSecretFile {
            let text: String
            do { text = try readSmallTextFile(file, flag: "--curve-secret-file", hint: "make one with --generate-curve-keys") } catch {
                throw ValidationError("\(error)")
            }
            do { launch.curveSecretKey = try CurveKeyPair(secretZ85: text).secretKey } catch {
                throw ValidationError("--curve-secret-file \(file) does not hold a Z85 CURVE secret key")
            }
        }
        let status = ServerProcess.run(launch, logger: logger)
        if status != .success { throw ExitCode(status.rawValue) }
    }

    func writeKeyPair(prefix: String) throws {
        let pair = try CurveKeyPair()
        do {
            try (CurveKeyPair.z85(pair.secretKey) + "\n").write(toFile: prefix + ".secret", atomically: true, encoding: .utf8)
            try (CurveKeyPair.z85(pair.publicKey) + "\n").write(toFile: prefix + ".public", atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("--generate-curve-keys \(prefix): cannot write \(prefix).secret/.public: \(error.localizedDescription)")
        }
        chmod(prefix + ".secret", 0o600)
        print(
            "wrote \(prefix).secret (for --curve-secret-file) and \(prefix).public (for worker --curve-server-key, or a server's --curve-authorized-keys)"
        )
    }
}

// Before any other thread exists: signals go to a thread of their own, SIGPIPE is ignored.
SignalHandlers.prepareProcess()
keepLargeMessageBlocks()
PSServer.main()
