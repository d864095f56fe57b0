import Datasets
import Exchange
import Foundation
import Model
import Optimizers
import ProcessSupport
import VariableScopes

/// How `ModelSelection.chooseScaling` spends its budget and which candidates it tries.
public struct SelectionOptions: Sendable {
    /// The full run's steps: the trials share `budgetFraction` of them.
    public var steps: Int
    /// 0.3 by default (0.2 before issue 20): two-rung halving gives each finalist 0.4 of it, 12% of --steps.
    public var budgetFraction: Double
    /// Seeds every trial's initial values and batches, so the choice is the same for the same seed.
    public var seed: UInt64
    public var optimizer: OptimizerConfig
    /// The seasonal period; nil detects it from the training part (`SeasonDetection`).
    public var season: Int?
    /// The scalings to try; nil tries `ModelSelection.candidates(season:)`.
    public var candidates: [Scaling]?
    public var trainFraction: Double
    /// The final run's validation share (for the season's detection, as the run will see it).
    public var validationFraction: Double
    /// The share of the training split, at its end, that the folds cover; the trials train before it.
    /// At least `validationFraction`. Never the held-out split.
    public var crossValidationFraction: Double
    /// Rolling-origin folds over that part, at least 3 (issue 20).
    public var folds: Int
    public var form: DenseVariableForm

    public init(
        steps: Int, budgetFraction: Double = 0.3, seed: UInt64 = 0,
        optimizer: OptimizerConfig = OptimizerConfig(kind: .adam, learningRate: 1e-3), season: Int? = nil,
        candidates: [Scaling]? = nil, trainFraction: Double = 0.8, validationFraction: Double = 0.1,
        crossValidationFraction: Double = 0.2, folds: Int = 3, form: DenseVariableForm = .getVariable
    ) {
        self.steps = steps
        self.budgetFraction = budgetFraction
        self.seed = seed
        self.optimizer = optimizer
        self.season = season
        self.candidates = candidates
        self.trainFraction = trainFraction
        self.validationFraction = validationFraction
        self.crossValidationFraction = crossValidationFraction
        self.folds = folds
        self.form = form
    }

    /// The steps all trials share.
    var budget: Int { Int(Double(steps) * budgetFraction) }
}

/// A scaling for the run, the season that goes with it, and why it was chosen.
public struct ScalingChoice: Sendable, Equatable, CustomStringConvertible {
    public let scaling: Scaling
    public let season: Int?
    /// Each candidate's scores at the last rung it reached; empty when the scaling was given.
    public let trials: [CandidateScore]
    /// Steps spent in all trials.
    public let budget: Int
    /// One line: what was chosen and why.
    public let reason: String

    public init(scaling: Scaling, season: Int?, trials: [CandidateScore], budget: Int, reason: String) {
        self.scaling = scaling
        self.season = season
        self.trials = trials
        self.budget = budget
        self.reason = reason
    }

    /// A scaling given on the command line (or forced, with no budget to choose): nothing was tried.
    public static func fixed(_ scaling: Scaling, season: Int?, reason: String? = nil) -> ScalingChoice {
        ScalingChoice(
            scaling: scaling, season: season, trials: [], budget: 0,
            reason: reason ?? "scaling \(scaling.rawValue) (given)" + (season.map { ", season \($0)" } ?? ""))
    }

    public var description: String { reason }

    /// The data set for this choice, with the same splits the trials used.
    /// - Throws: `DataError` when the series is too short for the window, horizon and splits.
    public func dataset(
        _ series: Series, window: Int, horizon: Int, trainFraction: Double = 0.8, validationFraction: Double = 0.1
    ) throws -> Dataset {
        try Dataset(
            series, window: window, horizon: horizon, scaling: scaling, season: season, trainFraction: trainFraction,
            validationFraction: validationFraction)
    }
}

/// Continues one optimizer state across trainers: a trial that goes on to the next rung resumes where it
/// stopped (same Adam moments, the batch stream continued), rather than starting again.
final class ContinuingExchange: ParameterExchange {
    private let local: LocalExchange
    private var done = 0
    private var started = false

    init(optimizer: OptimizerConfig) { local = LocalExchange(optimizer: optimizer) }

    func start(variables: [Variable]) throws -> Int {
        if !started { _ = try local.start(variables: variables) }
        started = true
        return done
    }

    func exchange(step: Int, variables: [Variable]) throws {
        try local.exchange(step: step, variables: variables)
        done = step
    }

    func finish(variables: [Variable]) throws {}
}

/// Chooses how to scale a series by training briefly with each candidate and scoring it on rolling-origin
/// folds: relative scaling suits a trending series, global scaling a stationary one, and neither rule of
/// thumb is safe on a series one has not looked at. Runs in this process, deterministically for a seed, so
/// every worker of a cluster can make the same choice without talking to the others.
///
/// What it costs: `budgetFraction` of `--steps` (30%) in trial steps, plus one forward pass over the fold
/// windows per candidate and rung; the trials train on the training split minus the folds (the last
/// `crossValidationFraction` of it), so they never see the folds or the held-out split.
public enum ModelSelection {
    /// The seasonal period of `series`' target, detected on the part that is trained on.
    public static func season(of series: Series, trainFraction: Double = 0.8, validationFraction: Double = 0.1)
        -> Int?
    {
        let cut = Int(Double(series.count) * trainFraction)
        let fitCut = cut - Int(Double(cut) * validationFraction)
        return SeasonDetection.period(of: series.values[..<fitCut].map { $0[0] })
    }

    /// The scalings `auto` tries: relative and global, and with a season the two seasonal ones.
    public static func candidates(season: Int?) -> [Scaling] {
        season == nil ? [.relative, .global] : [.seasonalDifference, .relative, .global, .seasonal]
    }

    /// Ranks the candidate scalings by rolling-origin cross-validation with successive halving
    /// (`HalvingPlan`), then applies the tie rule (`TieRule`): the simplest survivor is kept unless another
    /// beats it by more than the fold-to-fold spread.
    /// - Parameters:
    ///   - config: the model's sizes; `inputDim` is taken from the series.
    ///   - output: receives the trials' progress lines.
    /// - Throws: `DataError` when the series is too short; `TrainingError.noValidation` when the
    ///   folds would be empty, as there is then nothing to choose on.
    public static func chooseScaling(
        for series: Series, config: ModelConfig, options: SelectionOptions,
        output: @escaping (String) -> Void = { emitLine($0) }
    ) throws -> ScalingChoice {
        let season =
            options.season
            ?? self.season(
                of: series, trainFraction: options.trainFraction, validationFraction: options.validationFraction)
        let candidates = options.candidates ?? ModelSelection.candidates(season: season)
        let plan = HalvingPlan(budget: options.budget, candidates: candidates.count)
        guard !plan.rungs.isEmpty else {
            return .fixed(
                .relative, season: season,
                reason:
                    "scaling auto: relative, the default, as there are no steps to try others with (--steps \(options.steps))"
            )
        }
        var modelConfig = config
        modelConfig.inputDim = series.dimension
        let cvFraction = max(options.crossValidationFraction, options.validationFraction)
        struct Trial {
            let scaling: Scaling
            let dataset: Dataset
            let model: Seq2Seq
            let exchange: ContinuingExchange
            let folds: [Range<Int>]
        }
        var alive: [Trial] = try candidates.map { scaling in
            let dataset = try ScalingChoice.fixed(scaling, season: season).dataset(
                series, window: config.window, horizon: config.horizon, trainFraction: options.trainFraction,
                validationFraction: cvFraction)
            guard dataset.validation.count > 0 else { throw TrainingError.noValidation(series: series.name) }
            return Trial(
                scaling: scaling, dataset: dataset,
                model: try Seq2Seq(modelConfig, graph: Graph(seed: options.seed), form: options.form),
                exchange: ContinuingExchange(optimizer: options.optimizer),
                folds: RollingOrigin.folds(count: dataset.validation.count, folds: options.folds))
        }
        var final: [Scaling: CandidateScore] = [:]
        var dropped: [Scaling] = []
        var scores: [CandidateScore] = []
        for (r, rung) in plan.rungs.enumerated() {
            scores = []
            for trial in alive.prefix(rung.candidates) {
                // The Trainer announces a resume as a restarted worker's; here it is the next rung.
                let trainer = try Trainer(
                    model: trial.model, dataset: trial.dataset,
                    options: TrainingOptions(steps: rung.steps, seed: options.seed, logEvery: max(1, rung.steps)),
                    exchange: trial.exchange, output: { if !$0.hasPrefix("resumed from") { output($0) } })
                try trainer.train()
                let errors = RollingOrigin.windowErrors(trial.model, on: trial.dataset.validation)
                let score = CandidateScore(
                    scaling: trial.scaling, steps: rung.steps,
                    foldRatios: RollingOrigin.foldRatios(model: errors.model, naive: errors.naive, folds: trial.folds))
                scores.append(score)
                final[trial.scaling] = score
            }
            // Keep the best `next rung's` candidates, in their original order (the order is the tie-break).
            if r + 1 < plan.rungs.count {
                let keep = plan.rungs[r + 1].candidates
                let key = { (c: CandidateScore) in c.mean.isNaN ? Double.infinity : c.mean }
                let ranked = scores.sorted { key($0) < key($1) }.prefix(keep).map(\.scaling)
                dropped += alive.map(\.scaling).filter { !ranked.contains($0) }
                alive = alive.filter { ranked.contains($0.scaling) }
            }
        }
        let decision = TieRule.decide(scores)
        let trials = candidates.compactMap { final[$0] }
        let reason = explain(
            decision, scores: trials, dropped: dropped, plan: plan, steps: options.steps, season: season)
        return ScalingChoice(
            scaling: decision.chosen, season: season, trials: trials, budget: plan.total, reason: reason)
    }

    /// The one line: the choice, the rule that made it, every candidate's fold scores and the cost.
    static func explain(
        _ d: TieRule.Decision, scores: [CandidateScore], dropped: [Scaling], plan: HalvingPlan, steps: Int,
        season: Int?
    ) -> String {
        let why: String
        if d.chosen == d.simplest && d.lowest == d.simplest {
            why = "lowest mean over folds"
        } else if d.chosen == d.simplest && d.margin <= d.spread {
            why = String(
                format: "the simplest: %@ is lower by log %.3f on average, within the fold spread %.3f",
                d.lowest.rawValue, d.margin, d.spread)
        } else if d.chosen == d.simplest {
            why = String(
                format: "the simplest: %@ is lower by log %.3f on average, more than the fold spread %.3f, but not on every fold",
                d.lowest.rawValue, d.margin, d.spread)
        } else if !d.margin.isFinite {
            why = "the simpler \(d.simplest.rawValue) diverged (a fold score that is not a finite positive number)"
        } else {
            why = String(
                format: "lower than the simpler %@ by log %.3f on average, more than the fold spread %.3f, and on every fold",
                d.simplest.rawValue, d.margin, d.spread)
        }
        let table = scores.map { c in
            "\(c.scaling.rawValue) " + c.foldRatios.map { String(format: "%.3f", $0) }.joined(separator: "/")
                + (dropped.contains(c.scaling) ? " (dropped at \(c.steps))" : "")
        }
        let folds = scores.first?.foldRatios.count ?? 0
        return "scaling auto: chose \(d.chosen.rawValue), \(why); MSE/naive on \(folds) rolling-origin folds: "
            + table.joined(separator: ", ") + "; halving "
            + plan.rungs.map { "\($0.candidates)x\($0.steps)" }.joined(separator: " then ")
            + String(
                format: " steps (%d, %.0f%% of --steps %d)", plan.total,
                100 * Double(plan.total) / Double(max(1, steps)), steps)
            + (season.map { "; season \($0)" } ?? "; no season detected")
    }
}
