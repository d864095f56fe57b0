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
    public var budgetFraction: Double
    /// Seeds every trial's initial values and batches, so the choice is the same for the same seed.
    public var seed: UInt64
    public var optimizer: OptimizerConfig
    /// The seasonal period; nil detects it from the training part (`SeasonDetection`).
    public var season: Int?
    /// The scalings to try; nil tries relative, global and, when a season is known, seasonal.
    public var candidates: [Scaling]?
    public var trainFraction: Double
    public var validationFraction: Double
    public var form: DenseVariableForm

    public init(
        steps: Int, budgetFraction: Double = 0.2, seed: UInt64 = 0,
        optimizer: OptimizerConfig = OptimizerConfig(kind: .adam, learningRate: 1e-3), season: Int? = nil,
        candidates: [Scaling]? = nil, trainFraction: Double = 0.8, validationFraction: Double = 0.1,
        form: DenseVariableForm = .getVariable
    ) {
        self.steps = steps
        self.budgetFraction = budgetFraction
        self.seed = seed
        self.optimizer = optimizer
        self.season = season
        self.candidates = candidates
        self.trainFraction = trainFraction
        self.validationFraction = validationFraction
        self.form = form
    }

    /// Steps each of `count` trials gets.
    func stepsPerTrial(_ count: Int) -> Int { Int(Double(steps) * budgetFraction) / max(1, count) }
}

/// One short training run of a candidate scaling, judged on the validation split.
public struct ScalingTrial: Sendable, Equatable {
    public let scaling: Scaling
    public let steps: Int
    /// The lowest validation MSE seen during the trial, in the series' own units.
    public let validationMSE: Double
    /// The naive forecast's validation MSE, the same for every scaling.
    public let naiveMSE: Double
    public var ratio: Double { validationMSE / naiveMSE }
}

/// A scaling for the run, the season that goes with it, and why it was chosen.
public struct ScalingChoice: Sendable, Equatable, CustomStringConvertible {
    public let scaling: Scaling
    public let season: Int?
    /// Empty when the scaling was given rather than chosen.
    public let trials: [ScalingTrial]
    /// Steps spent in all trials.
    public let budget: Int
    /// One line: what was chosen and why.
    public let reason: String

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

/// Chooses how to scale a series by training briefly with each candidate and comparing validation MSE:
/// relative scaling suits a trending series, global scaling a stationary one, and neither rule of thumb
/// is safe on a series one has not looked at. Runs in this process, deterministically for a seed, so
/// every worker of a cluster can make the same choice without talking to the others.
public enum ModelSelection {
    /// The seasonal period of `series`' target, detected on the part that is trained on.
    public static func season(of series: Series, trainFraction: Double = 0.8, validationFraction: Double = 0.1)
        -> Int?
    {
        let cut = Int(Double(series.count) * trainFraction)
        let fitCut = cut - Int(Double(cut) * validationFraction)
        return SeasonDetection.period(of: series.values[..<fitCut].map { $0[0] })
    }

    /// Trains a fresh model with each candidate scaling for an equal share of the budget and keeps the
    /// scaling with the lowest validation MSE (ties go to the earlier candidate).
    /// - Parameters:
    ///   - config: the model's sizes; `inputDim` is taken from the series.
    ///   - output: receives the trials' progress lines.
    /// - Throws: `DataError` when the series is too short; `TrainingError.noValidation` when the
    ///   validation split is empty, as there is then nothing to choose on.
    public static func chooseScaling(
        for series: Series, config: ModelConfig, options: SelectionOptions,
        output: @escaping (String) -> Void = { emitLine($0) }
    ) throws -> ScalingChoice {
        let season =
            options.season
            ?? self.season(
                of: series, trainFraction: options.trainFraction, validationFraction: options.validationFraction)
        let candidates = options.candidates ?? ([.relative, .global] + (season == nil ? [] : [.seasonal]))
        let perTrial = options.stepsPerTrial(candidates.count)
        guard perTrial > 0 else {
            return .fixed(
                .relative, season: season,
                reason:
                    "scaling auto: relative, the default, as there are no steps to try others with (--steps \(options.steps))"
            )
        }
        var modelConfig = config
        modelConfig.inputDim = series.dimension
        var trials: [ScalingTrial] = []
        for scaling in candidates {
            let dataset = try ScalingChoice.fixed(scaling, season: season).dataset(
                series, window: config.window, horizon: config.horizon, trainFraction: options.trainFraction,
                validationFraction: options.validationFraction)
            guard dataset.validation.count > 0 else { throw TrainingError.noValidation(series: series.name) }
            let model = try Seq2Seq(modelConfig, graph: Graph(seed: options.seed), form: options.form)
            let trainer = try Trainer(
                model: model, dataset: dataset,
                options: TrainingOptions(
                    steps: perTrial, seed: options.seed, logEvery: max(1, perTrial), patience: perTrial,
                    validateEvery: max(1, perTrial / 5)),
                exchange: LocalExchange(optimizer: options.optimizer), output: output)
            let report = try trainer.train()
            let naive = Evaluation.run(model, on: dataset, split: .validation).naiveMSE
            trials.append(
                ScalingTrial(
                    scaling: scaling, steps: report.steps, validationMSE: report.bestValidationMSE ?? .infinity,
                    naiveMSE: naive))
        }
        let best = trials.min { $0.validationMSE < $1.validationMSE }!
        let others = trials.filter { $0.scaling != best.scaling }.map {
            String(format: "%@ %.4g", $0.scaling.rawValue, $0.validationMSE)
        }
        let budget = trials.map(\.steps).reduce(0, +)
        let reason = String(
            format:
                "scaling auto: chose %@, lowest validation MSE %.4g (%.3f of naive) against %@, after %d-step trials (%d steps, %.0f%% of --steps %d)%@",
            best.scaling.rawValue, best.validationMSE, best.ratio, others.joined(separator: ", "), perTrial, budget,
            100 * Double(budget) / Double(max(1, options.steps)), options.steps,
            season.map { "; season \($0)" } ?? "; no season detected")
        return ScalingChoice(scaling: best.scaling, season: season, trials: trials, budget: budget, reason: reason)
    }
}
