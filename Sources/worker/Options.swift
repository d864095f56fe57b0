import ArgumentParser
import Datasets
import Model
import Training
import WorkerJob

extension Scaling: ExpressibleByArgument {}
extension DenseVariableForm: ExpressibleByArgument {}

/// The model's sizes, every one an option.
struct ModelOptions: ParsableArguments {
    @Option(help: "Examples per step (B).") var batch = 32
    @Option(help: "Observed values per window, encoder steps (T).") var window = 24
    @Option(help: "Values forecast per window, decoder steps (H).") var horizon = 12
    @Option(help: "Input features per step (D); with --print-variables only, data sets set it from their columns.")
    var inputDim: Int?
    @Option(help: "LSTM units (N).") var hidden = 64
    @Option(help: "Attentional hidden size (M, the seed's hidden_size2).") var hidden2 = 64

    /// Sizes in range, and an unrolled graph that fits in memory (its activations, roughly).
    func check() throws {
        for (name, v, hi) in [
            ("batch", batch, 4096), ("window", window, 4096), ("horizon", horizon, 4096), ("hidden", hidden, 4096),
            ("hidden2", hidden2, 4096),
        ] where !(1...hi).contains(v) {
            throw ValidationError("--\(name) must be in 1...\(hi), got \(v)")
        }
        if let d = inputDim, !(1...4096).contains(d) { throw ValidationError("--input-dim must be in 1...4096, got \(d)") }
        let bytes = ModelConfig(batch: batch, window: window, horizon: horizon, hidden: hidden, hidden2: hidden2)
            .activationBytes(batch: batch)
        guard bytes < ModelConfig.activationLimit else {
            throw ValidationError(
                "the model would need about \(Int(bytes / 1e9)) GB of activations: use smaller --batch, --window, --horizon or --hidden")
        }
    }

    var sizes: ModelConfigOptions {
        ModelConfigOptions(batch: batch, window: window, horizon: horizon, hidden: hidden, hidden2: hidden2)
    }
}

extension ScalingRequest: ExpressibleByArgument {}

/// Which series to train on and how to scale it.
struct DataOptions: ParsableArguments {
    @Option(help: "A built-in series (synthetic, co2, sunspots) or a CSV file path.") var data = "synthetic"
    @Option(help: "CSV column(s) to use; the first is forecast, all are inputs. Repeat for more features.")
    var column: [String] = []
    @Option(
        help:
            "auto (default: trials of each scored on 3 rolling-origin folds, the simplest kept unless another wins clearly), relative (per-window level removal), global (normalisation only), seasonal (relative on the seasonal difference), seasonal-difference (the departure from seasonal-naive) or ensemble (the mean of the best two on the folds; in-process, no --save)."
    )
    var scaling: ScalingRequest = .auto
    @Option(help: "Seasonal period in steps, for seasonal-naive and the seasonal scalings; default: detected from the training part.")
    var season: Int?
    @Option(help: "The share of the training split, at its end, never trained on: it chooses the scaling and when to stop.")
    var validationFraction = 0.1

    func check() throws {
        if let season, !(1...100_000).contains(season) { throw ValidationError("--season must be in 1...100000, got \(season)") }
        guard validationFraction.isFinite, (0..<0.5).contains(validationFraction) else {
            throw ValidationError("--validation-fraction must be in [0, 0.5), got \(validationFraction)")
        }
        if BuiltinSeries(rawValue: data) == nil && column.isEmpty {
            throw ValidationError("--data \(data) is a CSV file: name the column to forecast with --column")
        }
    }
}

/// When to stop: early stopping on the validation split.
struct StoppingOptions: ParsableArguments {
    @Option(
        help:
            "Stop after this many steps without a lower validation MSE and keep the best variables (in-process); 0 trains every step. Default: a quarter of --steps."
    )
    var patience: Int?
    @Option(help: "Never stop early before this step. Default: half of --steps.") var minSteps: Int?
    @Option(
        help:
            "Early stopping judges and keeps an exponential moving average of the variables with this decay; 0 judges the raw variables."
    )
    var averageDecay = EarlyStoppingDefaults.averageDecay
    @Flag(
        inversion: .prefixedNo,
        help:
            "With early stopping (in-process): shrink the model's correction to its scaling's baseline (naive, seasonal-naive, ...) by a factor in [0, 1] fitted on the validation windows."
    )
    var shrink = true

    func check() throws {
        if let patience, !(0...1_000_000_000).contains(patience) {
            throw ValidationError("--patience must be in 0...1000000000, got \(patience)")
        }
        if let minSteps, !(0...1_000_000_000).contains(minSteps) {
            throw ValidationError("--min-steps must be in 0...1000000000, got \(minSteps)")
        }
        guard averageDecay.isFinite, (0..<1).contains(averageDecay) else {
            throw ValidationError("--average-decay must be in [0, 1), got \(averageDecay)")
        }
    }

    /// The patience for a run of `steps` steps; nil when early stopping is off.
    func value(steps: Int) -> Int? {
        let p = patience ?? EarlyStoppingDefaults.patience(steps: steps)
        return p > 0 ? p : nil
    }
    func minimum(steps: Int) -> Int { minSteps ?? EarlyStoppingDefaults.minSteps(steps: steps) }
    var decay: Double? { averageDecay > 0 ? averageDecay : nil }
}
