import BLAS
import Datasets
import Exchange
import Foundation
import Logging
import Model
import Metrics
import Optimizers
import ProcessSupport
import SafeTensors
import Telemetry
import Training
import Transport
import VariableScopes
import Wire
import WorkerRuntime
import ZeroMQ

/// `--scaling`: one of the fixed scalings, `auto` (chosen on rolling-origin folds) or `ensemble` (the mean
/// forecast of the best two on the folds; in-process only, see `EnsembleJob`).
public enum ScalingRequest: String, Sendable, CaseIterable {
    case auto, relative, global, seasonal, ensemble
    case seasonalDifference = "seasonal-difference"
}

/// Everything a worker run needs, already checked by the command line.
public struct WorkerJobConfig: Sendable {
    public var model: ModelConfigOptions
    public var data: String
    public var columns: [String]
    public var scaling: ScalingRequest
    public var season: Int?
    public var validationFraction: Double
    /// Servers' `host:port`, in the same order on every worker; empty trains in this process.
    public var servers: [String]
    public var remote: RemoteSettings
    public var curveServerKeys: [[UInt8]]
    public var curveKeyPair: CurveKeyPair?
    public var restore: String?
    public var save: String?
    public var training: TrainingOptions
    public var optimizer: OptimizerConfig
    public var threads: Int
    public var denseForm: DenseVariableForm
    /// `--partitioner`: how the model's variables are split (nil: not at all).
    public var partitioner: PartitionerSpec?
    /// `--metrics-port`: serve /metrics, /healthz and /readyz over HTTP.
    public var metricsPort: Int?
    public var metricsBind = "127.0.0.1"

    public init(
        model: ModelConfigOptions, data: String, columns: [String], scaling: ScalingRequest, season: Int?,
        validationFraction: Double, servers: [String],
        remote: RemoteSettings, curveServerKeys: [[UInt8]], curveKeyPair: CurveKeyPair?, restore: String?,
        save: String?, training: TrainingOptions, optimizer: OptimizerConfig, threads: Int, denseForm: DenseVariableForm
    ) {
        self.model = model
        self.data = data
        self.columns = columns
        self.scaling = scaling
        self.season = season
        self.validationFraction = validationFraction
        self.servers = servers
        self.remote = remote
        self.curveServerKeys = curveServerKeys
        self.curveKeyPair = curveKeyPair
        self.restore = restore
        self.save = save
        self.training = training
        self.optimizer = optimizer
        self.threads = threads
        self.denseForm = denseForm
    }
}

/// The model's sizes (the input dimension comes from the data).
public struct ModelConfigOptions: Sendable {
    public var batch, window, horizon, hidden, hidden2: Int
    public init(batch: Int, window: Int, horizon: Int, hidden: Int, hidden2: Int) {
        (self.batch, self.window, self.horizon, self.hidden, self.hidden2) = (batch, window, horizon, hidden, hidden2)
    }
    public func config(inputDim: Int) -> ModelConfig {
        ModelConfig(batch: batch, window: window, horizon: horizon, inputDim: inputDim, hidden: hidden, hidden2: hidden2)
    }
}

/// A worker run: load the data, build the model with TF1 scopes, train alone or against servers, report.
public enum WorkerJob {
    /// The scaling to train with: the one asked for, or with `auto` the winner of short trials on the
    /// validation split. Every worker of a cluster runs the same trials (same data, same seed), so they
    /// agree without talking; the servers hold them to it and record it in their checkpoints. Restoring a
    /// checkpoint with `auto` takes the scaling recorded there (relative when none is).
    static func chooseScaling(_ job: WorkerJobConfig, series: Series) throws -> ScalingChoice {
        let season = job.season ?? ModelSelection.season(of: series, validationFraction: job.validationFraction)
        if let fixed = Scaling(rawValue: job.scaling.rawValue) { return .fixed(fixed, season: season) }
        if let restore = job.restore {
            for path in Checkpoints.newestFiles(in: restore) {
                guard let recorded = (try? SafeTensors.metadata(path))?["scaling"], !recorded.isEmpty else { continue }
                // A number read from a file: a season of 0 or 2^62 would trap in the windowing.
                guard let (scaling, recordedSeason) = parseScaling(recorded) else {
                    throw Checkpoints.Error.damaged(
                        path: path,
                        reason: "metadata scaling is '\(recorded.prefix(40))', not relative, global, seasonal or seasonal-difference[:period in 1...100000]")
                }
                return .fixed(
                    scaling, season: recordedSeason ?? season,
                    reason: "scaling auto: \(recorded), as recorded in the checkpoint in \(restore)")
            }
            return .fixed(
                .relative, season: season, reason: "scaling auto: relative, as the checkpoint in \(restore) records none")
        }
        return try ModelSelection.chooseScaling(
            for: series, config: job.model.config(inputDim: series.dimension),
            options: SelectionOptions(
                steps: job.training.steps, seed: job.training.seed, optimizer: job.optimizer, season: season,
                validationFraction: job.validationFraction, form: job.denseForm),
            output: { emitLine($0) })
    }

    /// Runs the job; prints its report lines to standard output.
    /// - Returns: the exit status.
    public static func run(_ job: WorkerJobConfig, logger: Logger) -> ExitStatus {
        BLAS.setThreadCount(job.threads)
        let readiness = Readiness()
        var endpoint: MetricsEndpoint?
        defer { endpoint?.stop() }
        do {
            if let port = job.metricsPort {
                endpoint = try MetricsEndpoint(
                    bind: job.metricsBind, port: port, registry: Telemetry.bootstrap(), readiness: readiness,
                    logger: logger)
            }
            // Before any training: a --save that cannot be written would lose the whole run at its end.
            if let save = job.save, let problem = unwritableReason(save) {
                logger.error("--save: \(SafeTensors.Error.unwritable(path: save, reason: problem))")
                return .usage
            }
            let series: Series
            if let builtin = BuiltinSeries(rawValue: job.data) {
                series = try builtin.load(seed: job.training.seed)
            } else {
                series = try CSVSeries.load(path: job.data, columns: job.columns)
                if let notice = series.filledNotice { logger.warning("\(notice)") }
            }
            if job.scaling == .ensemble { return try EnsembleJob.run(job, series: series, logger: logger) }
            let choice = try chooseScaling(job, series: series)
            emitLine(choice.reason)
            let dataset = try choice.dataset(
                series, window: job.model.window, horizon: job.model.horizon, validationFraction: job.validationFraction)
            let config = job.model.config(inputDim: series.dimension)
            let m = try Seq2Seq(
                config, graph: Graph(seed: job.training.seed), form: job.denseForm,
                partitioner: resolve(job.partitioner, config: config, servers: job.servers.count))
            let spec = ModelSpec(
                config: m.config, dataset: dataset, series: series, validationFraction: job.validationFraction)
            if let restore = job.restore { try Checkpoints.restore(m.graph, from: restore, warn: { logger.warning("\($0)") }) }
            let exchange: ParameterExchange
            var remote: RemoteExchange?
            var context: Context?
            if !job.servers.isEmpty {
                let ctx = try Context()
                context = ctx
                let clientSettings: [ZeroMQClientSettings] = job.servers.enumerated().map { i, s in
                    var settings = ZeroMQClientSettings(server: s)
                    // Servers are told the tensor frame limit in hello; a body must fit one frame whatever it is.
                    settings.maxMessageBytes = Int64(Body.frameLimit(job.remote.maxFrameBytes))
                    if !job.curveServerKeys.isEmpty {
                        settings.curveServerKey = job.curveServerKeys.count == 1 ? job.curveServerKeys[0] : job.curveServerKeys[i]
                        settings.curveKeyPair = job.curveKeyPair
                    }
                    return settings
                }
                let transports: [ClientTransport] = try clientSettings.map { try ZeroMQClientTransport($0, context: ctx) }
                var settings = job.remote
                settings.registerValues = job.restore != nil
                settings.usesCurve = !job.curveServerKeys.isEmpty
                settings.scaling = scalingLabel(choice)
                settings.partitioning = job.partitioner?.description ?? "none"
                settings.model = spec.json
                // The heartbeat thread's own connections, made on that thread (a socket belongs to one thread),
                // with the same keys: servers bind a heartbeat to the process by its incarnation and key.
                let r = try RemoteExchange(
                    servers: job.servers, transports: transports, settings: settings, logger: logger,
                    heartbeatTransports: { try clientSettings.map { try ZeroMQClientTransport($0, context: ctx) } })
                remote = r
                exchange = r
            } else {
                exchange = LocalExchange(optimizer: job.optimizer)
            }
            logger.info(
                job.training.steps == 0 ? "evaluating" : "training",
                metadata: [
                    "series": "\(series.name)", "train.windows": "\(dataset.train.count)",
                    "heldout.windows": "\(dataset.heldOut.count)", "worker.index": "\(job.training.taskIndex)",
                ])
            let trainer = try Trainer(model: m, dataset: dataset, options: job.training, exchange: exchange)
            trainer.record(choice)
            let metrics = job.metricsPort.map { _ in WorkerMetrics() }
            if let metrics {
                let batch = job.model.batch
                let started = Date()
                var firstStep: Int?
                trainer.onStep = { step, loss in
                    if firstStep == nil {
                        firstStep = step - 1
                        readiness.set(true)
                    }
                    metrics.step(loss: loss, examples: batch, rate: Double((step - firstStep!) * batch) / max(1e-9, Date().timeIntervalSince(started)), traffic: remote?.stats)
                }
                remote?.onLatency = { kind, seconds in metrics.latency(kind, seconds) }
            } else if remote == nil {
                readiness.set(true)
            }
            let stop = trainer.stop
            remote?.stopRequested = { stop.isRequested }
            let handlers = SignalHandlers([SIGTERM, SIGINT]) { sig in
                logger.info("signal received: stopping after this step", metadata: ["signal": "\(signalName(sig))"])
                stop.request()
            }
            defer { handlers.cancel() }
            // Only now: the scaling trials' models come and go before, and kept blocks would fragment the heap.
            if remote != nil { keepLargeMessageBlocks() }
            let report = try trainer.train()
            if report.resumedAt > 0 { emitLine("resumed at step \(report.resumedAt) (from the servers)") }
            emitLine(
                String(
                    format: "trained %d steps in %.1f s: %.0f examples/s, final loss %.5f", report.steps, report.seconds,
                    report.examplesPerSecond, report.finalLoss))
            emitLine(report.timeSummary)
            if let summary = report.earlyStoppingSummary { emitLine(summary) }
            if let remote {
                let floor = 2 * m.variables.map(\.byteCount).reduce(0, +)
                let s = remote.stats
                emitLine(
                    String(
                        format:
                            "traffic: %.0f bytes per step (sent %ld, received %ld in all, %ld steps); floor %ld (one float32 gradient + one float32 copy of the variables): %.3fx",
                        s.bytesPerStep, s.bytesSent, s.bytesReceived, s.steps, floor, s.bytesPerStep / Double(floor)))
                let exchangeSeconds = report.times.exchange / Double(max(report.steps, 1))
                emitLine(
                    String(
                        format: "exchange: %.2f GB/s (%.1f MB per step in %.2f ms per step, sending and waiting for the servers)",
                        s.bytesPerStep / max(exchangeSeconds, 1e-9) / 1e9, s.bytesPerStep / 1e6, exchangeSeconds * 1000))
                if s.prefetchedSteps > 0 {
                    emitLine("prefetch: \(s.prefetchedSteps) steps overlapped their exchange, each computed on values one step staler")
                }
                if s.recoveries > 0 || s.lateGradients > 0 {
                    emitLine(
                        String(
                            format: "recoveries: %d in %.2f s; updates lost by restarted servers: %d; late gradients dropped: %d",
                            s.recoveries, s.recoverySeconds, s.updatesLost, s.lateGradients))
                }
            }
            let modelBytes = m.variables.map(\.byteCount).reduce(0, +)
            emitLine(
                "memory: peak RSS \(ProcessMemory.megabytes(ProcessMemory.peakResidentBytes())); the variables and their gradients are \(ProcessMemory.megabytes(2 * modelBytes))")
            try TrainingError.checkFinite(m, loss: report.finalLoss)
            let evaluation = trainer.evaluate()
            metrics?.heldOut(evaluation.ratio)
            emitLine("\(evaluation)")
            if let save = job.save {
                try ModelFile.save(m, dataset: dataset, spec: spec, to: save)
                emitLine("model written to \(save)")
            }
            _ = context
            return .success
        } catch let e as DataError {
            logger.error("\(e)")
            if case .fileNotFound = e { return .noInput }
            return .dataError
        } catch RemoteError.stoppedWhileAway(let server) {
            // Asked to stop (Ctrl-C, SIGTERM) while a server was away: stopping is what was asked for.
            logger.warning("\(RemoteError.stoppedWhileAway(server: server))")
            return .success
        } catch RemoteError.alreadyDone(let server, let message) {
            // Not a failure: the task is complete. Exit 0, so that a restart policy does not start it again.
            logger.warning("\(RemoteError.alreadyDone(server: server, message: message))")
            return .success
        } catch let e as RemoteError {
            logger.error("\(e)")
            if case .refused(_, _, let body) = e, body.code == .unsupportedVersion { return .failure }
            return e.isRetryable ? .peerLost : .refused
        } catch let e as MetricsEndpointError {
            logger.error("\(e)")
            return .usage
        } catch let e as EnsembleJobError {
            logger.error("\(e)")
            return .usage
        } catch let e as TrainingError {
            logger.error("worker failed: \(e)")
            return .failure
        } catch let e as Checkpoints.Error {
            logger.error("\(e)")
            return e.isMissingInput ? .noInput : .dataError
        } catch let e as VariableScopeError {
            // The graph is built from the command line: a partitioning it cannot take (an axis the variable
            // does not have) is --partitioner's to change, not a failure a restart would fix.
            switch e {
            case .partitionFailed, .invalidPartitions, .partitionedEmpty:
                logger.error("\(e) (--partitioner)")
                return .usage
            default:
                logger.error("worker failed: \(e)")
                return .failure
            }
        } catch {
            logger.error("worker failed: \(error)")
            return .failure
        }
    }
}

/// The worker's Prometheus metrics: `worker_steps_total`, `worker_examples_total`, `worker_loss`,
/// `worker_examples_per_second`, `worker_push_seconds` and `worker_pull_seconds` (histograms),
/// `worker_bytes_sent_total`, `worker_bytes_received_total`, `worker_recoveries_total`,
/// `worker_heldout_ratio` (at the end).
final class WorkerMetrics {
    let steps = Counter(label: "worker_steps_total")
    let examples = Counter(label: "worker_examples_total")
    let loss = Gauge(label: "worker_loss")
    let rate = Gauge(label: "worker_examples_per_second")
    let push = Metrics.Timer(label: "worker_push_seconds")
    let pull = Metrics.Timer(label: "worker_pull_seconds")
    let sent = Counter(label: "worker_bytes_sent_total")
    let received = Counter(label: "worker_bytes_received_total")
    let recoveries = Counter(label: "worker_recoveries_total")
    let ratio = Gauge(label: "worker_heldout_ratio")
    var last = TrafficStats()

    func step(loss value: Float, examples n: Int, rate r: Double, traffic: TrafficStats?) {
        steps.increment()
        examples.increment(by: Int64(n))
        loss.record(Double(value))
        rate.record(r)
        if let t = traffic {
            if t.bytesSent > last.bytesSent { sent.increment(by: Int64(t.bytesSent - last.bytesSent)) }
            if t.bytesReceived > last.bytesReceived { received.increment(by: Int64(t.bytesReceived - last.bytesReceived)) }
            if t.recoveries > last.recoveries { recoveries.increment(by: Int64(t.recoveries - last.recoveries)) }
            last = t
        }
    }

    func latency(_ kind: MessageKind, _ seconds: Double) {
        let nanoseconds = Int64(seconds * 1e9)
        switch kind {
        case .push: push.recordNanoseconds(nanoseconds)
        case .pull: pull.recordNanoseconds(nanoseconds)
        default: break
        }
    }

    func heldOut(_ value: Double) { ratio.record(value) }
}

/// The partitioner `spec` names; `auto` sized for `servers` servers and the model of `config`.
public func resolve(_ spec: PartitionerSpec?, config: ModelConfig, servers: Int) -> Partitioner? {
    guard let spec else { return nil }
    if spec == .auto { return Placement.autoPartitioner(totalBytes: config.parameterBytes, servers: servers) }
    return spec.partitioner()
}

/// The scaling as servers record it: `relative`, `global`, `seasonal:<period>` or
/// `seasonal-difference:<period>`.
public func scalingLabel(_ choice: ScalingChoice) -> String {
    choice.scaling.needsSeason ? "\(choice.scaling.rawValue):\(choice.season ?? 0)" : choice.scaling.rawValue
}

/// Parses `scalingLabel`'s text.
func parseScaling(_ text: String) -> (Scaling, Int?)? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count <= 2, let scaling = parts.first.flatMap({ Scaling(rawValue: String($0)) }) else { return nil }
    guard parts.count == 2 else { return (scaling, nil) }
    // The same bounds as --season; 0 is how `scalingLabel` writes "none".
    guard let season = Int(parts[1]), (0...100_000).contains(season) else { return nil }
    return (scaling, season == 0 ? nil : season)
}
