import ArgumentParser
import Logging
import ZeroMQ

/// `ps-server`: a parameter-server process that owns scoped variables and their optimizer state.
struct PSServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps-server",
        abstract: "Serve model variables to workers over ZeroMQ and apply their gradients.")

    @Option(help: "TCP port to listen on.")
    var port: Int

    @Option(help: "Address to bind (loopback by default; 0.0.0.0 to serve other machines).")
    var bind: String = "127.0.0.1"

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535, got \(port)") }
    }

    func run() throws {
        let logger = Logger(label: "ps-server")
        logger.info("ps-server on tcp://\(bind):\(port)", metadata: ["zmq.version": "\(Context.version)"])
    }
}

PSServer.main()
