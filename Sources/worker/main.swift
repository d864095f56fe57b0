import ArgumentParser
import BLAS
import Datasets
import Dispatch
import Foundation
import Logging
import Model
import Optimizers
import SafeTensors
import Training
import VariableScopes
import WorkerRuntime
import ZeroMQ

/// `worker`: builds the seq2seq attention forecaster with TF1 variable scopes and trains it, in this
/// process (no `--ps`) or against parameter servers.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Train the seq2seq attention forecaster, alone or against parameter servers.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var stopping: StoppingOptions

    @Option(help: "Parameter servers, host:port[,host:port...]; none trains in this process.")
    var ps: String?

    @Option(
        help:
            "The servers' CURVE public key (Z85 text or a file holding it); repeat once per server, or give one for all."
    )
    var curveServerKey: [String] = []

    @Option(help: "Seconds any one wait for a parameter server may take.")
    var timeout: Double = 60

    @Option(
        help:
            "Load variables from the .safetensors files in this directory before training (e.g. servers' checkpoints).")
    var restore: String?

    @Option(help: "After training, write the model (variables, normalisation, sizes) to this .safetensors file.")
    var save: String?

    @Option(help: "This worker's index among --num-workers (selects its shard of the training windows).")
    var taskIndex = 0

    @Option(help: "How many workers share the training windows.")
    var numWorkers = 1

    @Option(help: "Training steps.")
    var steps = 1000

    @Option(help: "Optimizer: sgd, momentum or adam (in-process training; servers take theirs on their command line).")
    var optimizer: String = "adam"

    @Option(help: "Learning rate (in-process training).")
    var learningRate: Float = 1e-3

    @Option(help: "Momentum coefficient for --optimizer momentum.")
    var momentum: Float = 0.9

    @Option(help: "Global seed: initial values and batch sampling.")
    var seed: UInt64 = 0

    @Option(help: "Print progress every N steps when not on a terminal.")
    var logEvery = 100

    @Option(help: "Write TensorBoard event files to this directory.")
    var logdir: String?

    @Option(help: "OpenBLAS threads for this process.")
    var threads = 1

    @Flag(help: "Print each variable's name, shape and bytes, and the scope diagnostics, then exit.")
    var printVariables = false

    @Option(
        help: "How the decoder's dense weights are made: getVariable (shared, the fix) or variable (the seed's bug).")
    var denseForm: String = "getVariable"

    func validate() throws {
        guard steps >= 0 else { throw ValidationError("--steps must be at least 0") }
        guard numWorkers >= 1, (0..<numWorkers).contains(taskIndex) else {
            throw ValidationError("--task-index must be in 0..<\(numWorkers) (--num-workers), got \(taskIndex)")
        }
        guard OptimizerConfig.Kind(rawValue: optimizer) != nil else {
            throw ValidationError("--optimizer must be one of sgd, momentum, adam; got '\(optimizer)'")
        }
        guard DenseVariableForm(rawValue: denseForm) != nil else {
            throw ValidationError("--dense-form must be getVariable or variable; got '\(denseForm)'")
        }
        try model.check()
        try data.check()
        try stopping.check()
    }

    func run() throws {
        BLAS.setThreadCount(threads)
        let logger = Logger(label: "worker")
        let form = DenseVariableForm(rawValue: denseForm)!
        if printVariables {
            let m = try Seq2Seq(model.config(inputDim: model.inputDim ?? 1), graph: Graph(seed: seed), form: form)
            print(VariableReport(m.graph).text)
            return
        }
        do {
            let series = try data.load(seed: seed)
            let choice = try data.choose(
                for: series, config: model.config(inputDim: series.dimension), steps: steps, seed: seed,
                optimizer: OptimizerConfig(
                    kind: .init(rawValue: optimizer)!, learningRate: learningRate, momentum: momentum),
                form: form, trials: ps == nil && restore == nil)
            print(choice.reason)
            let dataset = try choice.dataset(
                series, window: model.window, horizon: model.horizon, validationFraction: data.validationFraction)
            let m = try Seq2Seq(model.config(inputDim: series.dimension), graph: Graph(seed: seed), form: form)
            if let restore { try Checkpoints.restore(m.graph, from: restore) }
            let exchange: ParameterExchange
            var remote: RemoteExchange?
            if let ps {
                let context = try Context()
                let servers = ps.split(separator: ",").map(String.init)
                let keys = try curveServerKey.map { given -> [UInt8] in
                    let text = (try? String(contentsOfFile: given, encoding: .utf8)) ?? given
                    do { return try CurveKeyPair.decode(text) } catch {
                        throw ValidationError(
                            "--curve-server-key \(given) is neither a Z85 public key nor a file holding one")
                    }
                }
                remote = try RemoteExchange(
                    servers: servers, taskIndex: taskIndex, numWorkers: numWorkers, seed: seed,
                    timeout: timeout, context: context, logger: logger, curveServerKeys: keys.isEmpty ? nil : keys)
                exchange = remote!
            } else {
                exchange = LocalExchange(
                    optimizer: OptimizerConfig(
                        kind: .init(rawValue: optimizer)!, learningRate: learningRate,
                        momentum: momentum))
            }
            logger.info(
                steps == 0 ? "evaluating" : "training",
                metadata: [
                    "series": "\(series.name)", "train.windows": "\(dataset.train.count)",
                    "heldout.windows": "\(dataset.heldOut.count)", "worker.index": "\(taskIndex)",
                ])
            let trainer = try Trainer(
                model: m, dataset: dataset,
                options: TrainingOptions(
                    steps: steps, seed: seed, taskIndex: taskIndex, numWorkers: numWorkers,
                    logEvery: logEvery, logdir: logdir, patience: ps == nil ? stopping.value : nil),
                exchange: exchange)
            trainer.record(choice)
            // SIGTERM or Ctrl-C: finish the step, tell the servers this worker is done, report, exit.
            var sources: [DispatchSourceSignal] = []
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    logger.info("signal received: stopping after this step", metadata: ["signal": "\(sig)"])
                    trainer.requestStop()
                }
                source.resume()
                sources.append(source)
            }
            defer { sources.forEach { $0.cancel() } }
            let report = try trainer.train()
            print(
                String(
                    format: "trained %d steps in %.1f s: %.0f examples/s, final loss %.5f", report.steps,
                    report.seconds,
                    report.examplesPerSecond, report.finalLoss))
            if let summary = report.earlyStoppingSummary { print(summary) }
            if let remote {
                let floor = 2 * m.variables.map(\.byteCount).reduce(0, +)
                print(
                    String(
                        format:
                            "traffic: %.0f bytes per step (sent %d, received %d over %d steps); floor %d (one gradient + one copy of the variables): %.3fx",
                        remote.stats.bytesPerStep, remote.stats.bytesSent, remote.stats.bytesReceived,
                        remote.stats.steps,
                        floor, remote.stats.bytesPerStep / Double(floor)))
            }
            print(trainer.evaluate())
            if let save {
                try ModelFile.save(m, dataset: dataset, to: save)
                print("model written to \(save)")
            }
        } catch let e as DataError {
            throw ValidationError(e.description)
        } catch let e as RemoteError {
            logger.error("\(e)")
            throw ExitCode(2)
        }
    }
}

Worker.main()
