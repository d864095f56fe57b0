import ArgumentParser
import Datasets
import Foundation
import Logging
import Model
import Optimizers
import ProcessSupport
import Training
import VariableScopes
import WorkerJob
import Wire
import WorkerRuntime
import ZeroMQ

extension OptimizerConfig.Kind: ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
extension WireDType: ExpressibleByArgument {}

/// `worker`: builds the seq2seq attention forecaster with TF1 variable scopes and trains it, in this
/// process (no `--ps`) or against parameter servers. It parses and checks options (and `TF_CONFIG`),
/// then hands a typed job to `WorkerJob`.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Train the seq2seq attention forecaster, alone or against parameter servers.",
        discussion: """
            With TF_CONFIG set (task type worker or chief), --ps, --task-index and --num-workers come from it \
            (a chief counts as worker 0); flags override it.
            Exit codes: 0 success, 64 bad usage or TF_CONFIG, 65 bad data, 66 missing checkpoint, 77 refused by \
            a server (shape conflict, key not admitted, index taken), 138 a server lost past --recovery-timeout \
            (retryable), 1 other failures.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var stopping: StoppingOptions

    @Option(help: "Parameter servers, host:port[,host:port...]; none trains in this process.") var ps: String?
    @Option(help: "The servers' CURVE public key (Z85 text or a file); repeat once per server, or give one for all.")
    var curveServerKey: [String] = []
    @Option(help: "This worker's own CURVE secret key file (its public key must be in the servers' authorized keys).")
    var curveSecretFile: String?
    @Option(name: .customLong("wire-dtype"), help: "How tensors cross the wire: float32, or bf16 (half the bytes; servers keep float32 state).")
    var wireDType: WireDType = .float32
    @Flag(help: "Async servers only: overlap each step's push and pull with the next step's computation (one step staler).")
    var prefetch = false
    @Option(help: "Seconds a live server may take to answer one request.") var timeout: Double = 60
    @Option(help: "Seconds to keep reconnecting to a lost server before giving up (exit 138).")
    var recoveryTimeout: Double = 300
    @Option(help: "Pushes a server may refuse in a row (a non-finite gradient, say) before the worker gives up; each is skipped.")
    var maxRefusedPushes = 10
    @Option(help: .hidden) var stallAtStep: String?
    @Option(help: "Load variables from the .safetensors files in this directory before training.") var restore: String?
    @Option(help: "After training, write the model (variables, normalisation, sizes) to this .safetensors file.")
    var save: String?
    @Option(help: "This worker's index among --num-workers (selects its shard of the training windows).")
    var taskIndex: Int?
    @Option(help: "How many workers share the training windows.") var numWorkers: Int?
    @Option(help: "Training steps.") var steps = 1000
    @Option(help: "Optimizer for in-process training (servers take theirs on their command line).")
    var optimizer: OptimizerConfig.Kind = .adam
    @Option(help: "Learning rate (in-process training).") var learningRate: Float = 1e-3
    @Option(help: "Momentum coefficient for --optimizer momentum.") var momentum: Float = 0.9
    @Option(help: "Global seed: initial values and batch sampling.") var seed: UInt64 = 0
    @Option(help: "Print progress every N steps when not on a terminal.") var logEvery = 100
    @Option(help: "Write TensorBoard event files to this directory.") var logdir: String?
    @Option(help: "OpenBLAS threads for this process.") var threads = 1
    @Option(help: "text or json (one object per line).") var logFormat: LogFormat = .text
    @Option(help: "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on this port.") var metricsPort: Int?
    @Option(help: "Address for --metrics-port (127.0.0.1; 0.0.0.0 under TF_CONFIG).") var metricsBind: String?
    @Flag(help: "Print each variable's name, shape and bytes, and the scope diagnostics, then exit.")
    var printVariables = false
    @Option(
        help: ArgumentHelp(
            "Split the model's variables as TensorFlow's partitioners do: \(PartitionerSpec.grammar) (bytes are plain integers; axis 0 unless given). auto balances the servers in --ps (--num-ps with --print-variables). Every worker of a job must give the same.",
            valueName: "spec"),
        transform: { text in
            do { return try PartitionerSpec(parsing: text) } catch { throw ValidationError("\(error)") }
        })
    var partitioner: PartitionerSpec?
    @Option(help: "With --print-variables and no --ps: the servers --partitioner auto sizes parts for.") var numPs: Int?
    @Option(help: "Largest tensor frame this worker takes; larger tensors arrive in chunks that fit (1024 bytes to 4 GiB; a message's JSON body may be up to 4 MiB whatever this is).")
    var maxMessageBytes: Int = 256 << 20
    @Option(help: "How the decoder's dense weights are made: getVariable (shared, the fix) or variable (the seed's bug).")
    var denseForm: DenseVariableForm = .getVariable

    var cluster: ClusterSpec? {
        get throws {
            do { return try ClusterSpec.fromEnvironment() } catch let e as ClusterSpecError { throw ValidationError("\(e)") }
        }
    }

    /// The servers, task index and worker count: flags first, then `TF_CONFIG`.
    func topology() throws -> (servers: [String], index: Int, workers: Int) {
        let spec = try cluster
        if let spec, spec.workerIndex == nil, ps != nil || taskIndex == nil {
            throw ValidationError(
                "TF_CONFIG: task.type is \(spec.taskType.rawValue); worker runs worker or chief tasks (use ps-server for ps)")
        }
        var servers: [String] = []
        if let ps {
            servers = ps.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
        } else if let spec {
            servers = spec.ps
        }
        let workers = numWorkers ?? spec.map(\.numWorkers) ?? 1
        let index = taskIndex ?? spec?.workerIndex ?? 0
        return (servers, index, workers)
    }

    func validate() throws {
        let (servers, index, workers) = try topology()
        // host:port with a port in 1...65535, digits only; each server once (localhost and 127.0.0.1 are
        // one); IPv6 refused with the reason.
        if ps != nil && servers.isEmpty { throw ValidationError("--ps must be host:port[,host:port...]") }
        do { _ = try Endpoint.parseList(servers, source: ps != nil ? "--ps" : "TF_CONFIG: cluster.ps") } catch {
            throw ValidationError("\(error)")
        }
        guard (1...65_536).contains(workers) else { throw ValidationError("--num-workers must be in 1...65536, got \(workers)") }
        guard (0..<workers).contains(index) else {
            throw ValidationError("--task-index must be in 0..<\(workers) (--num-workers), got \(index)")
        }
        guard (0...1_000_000_000).contains(steps) else { throw ValidationError("--steps must be in 0...1000000000, got \(steps)") }
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
            throw ValidationError("--timeout must be in (0, 86400] seconds, got \(timeout)")
        }
        guard recoveryTimeout.isFinite, recoveryTimeout >= 0, recoveryTimeout <= 604_800 else {
            throw ValidationError("--recovery-timeout must be in [0, 604800] seconds, got \(recoveryTimeout)")
        }
        guard (1...1_000_000).contains(maxRefusedPushes) else {
            throw ValidationError("--max-refused-pushes must be in 1...1000000, got \(maxRefusedPushes)")
        }
        _ = try stall()
        guard (1...1_000_000_000).contains(logEvery) else { throw ValidationError("--log-every must be at least 1, got \(logEvery)") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
        if let problem = OptimizerConfig(kind: optimizer, learningRate: learningRate, momentum: momentum).problem {
            throw ValidationError(problem)
        }
        if let problem = metricsOptionsProblem(port: metricsPort, bind: metricsBind) { throw ValidationError(problem) }
        if curveSecretFile != nil && curveServerKey.isEmpty {
            throw ValidationError("--curve-secret-file needs --curve-server-key (the servers' public key)")
        }
        if !curveServerKey.isEmpty, curveServerKey.count != 1, curveServerKey.count != servers.count {
            throw ValidationError("\(curveServerKey.count) --curve-server-key values for \(servers.count) servers: give one, or one per server")
        }
        guard (1024...(4 << 30)).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes must be in 1024...\(4 << 30), got \(maxMessageBytes)")
        }
        if let n = numPs, !(1...4096).contains(n) { throw ValidationError("--num-ps must be in 1...4096, got \(n)") }
        try model.check()
        try data.check()
        try stopping.check()
    }

    /// `--stall-at-step STEP:SECONDS` (a test hook): that step takes SECONDS longer.
    func stall() throws -> (step: Int, seconds: Double)? {
        guard let text = stallAtStep else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let step = Int(parts[0]), step >= 1, let seconds = Double(parts[1]), seconds.isFinite,
            (0...3600).contains(seconds)
        else { throw ValidationError("--stall-at-step takes STEP:SECONDS (a step from 1, seconds in 0...3600), got '\(text)'") }
        return (step, seconds)
    }

    func run() throws {
        bootstrapLogging(logFormat)
        let logger = Logger(label: "worker")
        if printVariables {
            let config = model.sizes.config(inputDim: model.inputDim ?? 1)
            let servers = ps != nil ? try topology().servers.count : numPs ?? 1
            do {
                let m = try Seq2Seq(
                    config, graph: Graph(seed: seed), form: denseForm, partitioner: resolve(partitioner, config: config, servers: servers))
                print(VariableReport(m.graph).text)
            } catch let e as VariableScopeError {
                // A partitioner that cannot split a variable (an axis past its rank, say), as TensorFlow refuses it.
                throw ValidationError("--partitioner \(partitioner?.description ?? ""): \(e)")
            }
            return
        }
        let (servers, index, workers) = try topology()
        let keys = try curveServerKey.map { given -> [UInt8] in
            let text = (try? readSmallTextFile(given, flag: "--curve-server-key")) ?? given
            do { return try CurveKeyPair.decode(text) } catch {
                throw ValidationError("--curve-server-key \(given) is neither a Z85 public key nor a file holding one")
            }
        }
        var pair: CurveKeyPair?
        if let file = curveSecretFile {
            do {
                pair = try CurveKeyPair(secretZ85: try readSmallTextFile(file, flag: "--curve-secret-file"))
            } catch let e as FileProblem {
                throw ValidationError(e.description)
            } catch {
                throw ValidationError("--curve-secret-file \(file) does not hold a Z85 CURVE secret key")
            }
        }
        var remote = RemoteSettings(taskIndex: index, numWorkers: workers, seed: seed)
        remote.timeout = timeout
        remote.recoveryTimeout = recoveryTimeout
        remote.wireDType = wireDType
        remote.prefetch = prefetch
        remote.maxRefusedPushes = maxRefusedPushes
        remote.maxFrameBytes = maxMessageBytes
        let job = WorkerJobConfig(
            model: model.sizes, data: data.data, columns: data.column, scaling: data.scaling, season: data.season,
            validationFraction: data.validationFraction, servers: servers,
            remote: remote, curveServerKeys: keys, curveKeyPair: pair, restore: restore, save: save,
            training: TrainingOptions(
                steps: steps, seed: seed, taskIndex: index, numWorkers: workers, logEvery: logEvery, logdir: logdir,
                patience: servers.isEmpty ? stopping.value(steps: steps) : nil,
                minSteps: stopping.minimum(steps: steps), averageDecay: stopping.decay, shrink: stopping.shrink,
                stall: try stall()),
            optimizer: OptimizerConfig(kind: optimizer, learningRate: learningRate, momentum: momentum), threads: threads,
            denseForm: denseForm)
        var configured = job
        configured.partitioner = partitioner
        configured.metricsPort = metricsPort
        configured.metricsBind = metricsBind ?? ((try? cluster) != nil ? "0.0.0.0" : "127.0.0.1")
        let status = WorkerJob.run(configured, logger: logger)
        if status != .success { throw ExitCode(status.rawValue) }
    }
}

// Before any other thread exists: signals go to a thread of their own, SIGPIPE is ignored.
SignalHandlers.prepareProcess()
Worker.main()
