import ArgumentParser
import Logging

/// `worker`: builds the model with TF1 variable scopes and trains it.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Train the seq2seq attention forecaster, alone or against parameter servers.")

    @Option(help: "Parameter servers, host:port[,host:port...]; none trains in this process.")
    var ps: String?

    func run() throws {
        let logger = Logger(label: "worker")
        logger.info("worker", metadata: ["ps": "\(ps ?? "none")"])
    }
}

Worker.main()
