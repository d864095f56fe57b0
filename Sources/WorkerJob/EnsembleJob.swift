import Datasets
import Exchange
import Foundation
import Logging
import Model
import ProcessSupport
import Training
import VariableScopes

/// Why `--scaling ensemble` cannot run as asked.
public enum EnsembleJobError: Error, CustomStringConvertible {
    case inProcessOnly(what: String)

    public var description: String {
        switch self {
        case .inProcessOnly(let what):
            return
                "--scaling ensemble trains in this process only for now: \(what) is not supported with it; use --scaling auto"
        }
    }
}

/// `--scaling ensemble`: the scalings are ranked as `auto` ranks them (rolling-origin folds, halving),
/// then the top `members` each train on an equal share of `--steps` (one shared budget: the same steps
/// as `auto`), and the held-out report is the mean of their forecasts.
enum EnsembleJob {
    static let members = 2

    static func run(_ job: WorkerJobConfig, series: Series, logger: Logger) throws -> ExitStatus {
        if !job.servers.isEmpty { throw EnsembleJobError.inProcessOnly(what: "--ps (a cluster)") }
        if job.save != nil { throw EnsembleJobError.inProcessOnly(what: "--save (a model file holds one model)") }
        if job.restore != nil { throw EnsembleJobError.inProcessOnly(what: "--restore") }
        let choice = try WorkerJob.chooseScaling(job, series: series)
        let chosen = Array(choice.ranked.prefix(members))
        emitLine(choice.reason)
        emitLine(
            "scaling ensemble: the mean of \(chosen.map(\.rawValue).joined(separator: " and ")), the best \(chosen.count) on the folds"
        )
        var share = job.training
        share.steps = job.training.steps / max(1, chosen.count)
        if share.patience != nil {
            share.patience = EarlyStoppingDefaults.patience(steps: share.steps, validateEvery: share.validateEvery)
            share.minSteps = EarlyStoppingDefaults.minSteps(steps: share.steps)
        }
        var members: [EnsembleMember] = []
        var trained = 0
        for scaling in chosen {
            let dataset = try ScalingChoice.fixed(scaling, season: choice.season).dataset(
                series, window: job.model.window, horizon: job.model.horizon, validationFraction: job.validationFraction
            )
            let m = try Seq2Seq(
                job.model.config(inputDim: series.dimension), graph: Graph(seed: job.training.seed), form: job.denseForm
            )
            let trainer = try Trainer(
                model: m, dataset: dataset, options: share, exchange: LocalExchange(optimizer: job.optimizer))
            let report = try trainer.train()
            try TrainingError.checkFinite(m, loss: report.finalLoss, label: "\(scaling.rawValue) member's ")
            trained += report.steps
            emitLine(
                "member \(scaling.rawValue): trained \(report.steps) steps; "
                    + (report.earlyStoppingSummary ?? "no early stopping") + "; alone: "
                    + String(format: "held-out ratio %.3f", Evaluation.run(m, on: dataset).ratio))
            members.append(EnsembleMember(model: m, dataset: dataset))
        }
        emitLine("trained \(trained) steps in all (\(members.count) members)")
        emitLine("\(try Evaluation.run(members))")
        logger.debug("ensemble done")
        return .success
    }
}
