import ArgumentParser
import Dispatch
import Foundation
import Logging
import Optimizers
import ParameterServer
import Wire
import ZeroMQ

/// `ps-server`: a parameter-server process that owns scoped variables and their optimizer state.
struct PSServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps-server",
        abstract: "Serve model variables to workers over ZeroMQ and apply their gradients.")

    @Option(help: "TCP port to listen on; 0 picks a free one (see --port-file).")
    var port: Int?

    @Option(help: "Encrypt and authenticate with CURVE: a file holding this server's Z85 secret key.")
    var curveSecretFile: String?

    @Option(help: "Write a new CURVE key pair to PREFIX.secret and PREFIX.public, then exit.")
    var generateCurveKeys: String?

    @Option(help: "Write the port actually bound to this file once listening (for harnesses and tests).")
    var portFile: String?

    @Option(help: "Address to bind (loopback by default; 0.0.0.0 serves other machines).")
    var bind: String = "127.0.0.1"

    @Option(help: "sync (average every worker's gradient of a step, apply once) or async (apply each push).")
    var mode: String = "async"

    @Option(help: "Async only: how many steps a worker may run ahead of the slowest one.")
    var staleness: Int?

    @Option(help: "sgd, momentum or adam.")
    var optimizer: String = "adam"

    @Option(help: "Learning rate.")
    var learningRate: Float = 1e-3

    @Option(help: "Momentum coefficient (momentum optimizer).")
    var momentum: Float = 0.9

    @Option(help: "Adam's beta1.") var beta1: Float = 0.9
    @Option(help: "Adam's beta2.") var beta2: Float = 0.999
    @Option(help: "Adam's epsilon.") var epsilon: Float = 1e-8

    @Option(help: "Write the variables here as <name>.safetensors when the run ends.")
    var checkpointDir: String?

    @Option(help: "This server's name in logs and its checkpoint file (default ps-<bound port>).")
    var name: String?

    @Flag(help: "Keep serving after every worker is done (stop with SIGTERM or Ctrl-C).")
    var keepServing = false

    @Option(help: "Largest message accepted, in bytes.")
    var maxMessageBytes: Int64 = 256 << 20

    func validate() throws {
        if generateCurveKeys != nil { return }
        guard let port else { throw ValidationError("Missing expected argument '--port <port>'") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        guard SyncMode(rawValue: mode) != nil else {
            throw ValidationError("--mode must be sync or async, got '\(mode)'")
        }
        guard OptimizerConfig.Kind(rawValue: optimizer) != nil else {
            throw ValidationError("--optimizer must be sgd, momentum or adam, got '\(optimizer)'")
        }
        if let s = staleness {
            guard s >= 0 else { throw ValidationError("--staleness must be at least 0") }
            guard mode == "async" else { throw ValidationError("--staleness applies to --mode async only") }
        }
        guard learningRate > 0 else { throw ValidationError("--learning-rate must be positive") }
    }

    func run() throws {
        if let prefix = generateCurveKeys {
            let pair = try CurveKeyPair()
            try (CurveKeyPair.z85(pair.secretKey) + "\n").write(
                toFile: prefix + ".secret", atomically: true, encoding: .utf8)
            try (CurveKeyPair.z85(pair.publicKey) + "\n").write(
                toFile: prefix + ".public", atomically: true, encoding: .utf8)
            chmod(prefix + ".secret", 0o600)
            print(
                "wrote \(prefix).secret (for ps-server --curve-secret-file) and \(prefix).public (for worker --curve-server-key)"
            )
            return
        }
        let port = self.port!
        var curveSecret: [UInt8]?
        if let file = curveSecretFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("--curve-secret-file \(file) cannot be read; make one with --generate-curve-keys")
            }
            do { curveSecret = try CurveKeyPair(secretZ85: text).secretKey } catch {
                throw ValidationError("--curve-secret-file \(file) does not hold a Z85 CURVE secret key: \(error)")
            }
        }
        let logger = Logger(label: "ps-server")
        let options = ServerOptions(
            endpoint: "tcp://\(bind):\(port == 0 ? "*" : String(port))", name: name ?? "",
            mode: SyncMode(rawValue: mode)!, staleness: staleness,
            optimizer: OptimizerConfig(
                kind: .init(rawValue: optimizer)!, learningRate: learningRate, momentum: momentum,
                beta1: beta1, beta2: beta2, epsilon: epsilon),
            checkpointDir: checkpointDir, keepServing: keepServing, maxMessageBytes: maxMessageBytes,
            curveSecretKey: curveSecret)
        let context = try Context()
        let server: ParameterServer
        do {
            server = try ParameterServer(options: options, context: context, logger: logger)
        } catch let e as ZMQError {
            throw ValidationError(
                "cannot listen on \(options.endpoint): \(e). Is another ps-server using port \(port)?")
        }
        let boundPort = server.boundEndpoint.split(separator: ":").last.map(String.init) ?? "\(port)"
        if let portFile {
            try (boundPort + "\n").write(toFile: portFile + ".tmp", atomically: true, encoding: .utf8)
            _ = rename(portFile + ".tmp", portFile)
        }
        // SIGTERM and SIGINT stop the loop cleanly: the checkpoint is still written.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                logger.info("signal received, stopping", metadata: ["signal": "\(sig)"])
                server.requestStop()
            }
            source.resume()
            sources.append(source)
        }
        try server.run()
        for source in sources { source.cancel() }
        // The server closed its socket with a linger: this waits (2 s at most) for the last replies to leave.
        context.terminate()
    }
}

PSServer.main()
