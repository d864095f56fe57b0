import ArgumentParser
import Datasets
import Model
import Optimizers
import Training

/// The model's sizes, every one an option.
struct ModelOptions: ParsableArguments {
    @Option(help: "Examples per step (B).") var batch = 32
    @Option(help: "Observed values per window, encoder steps (T).") var window = 24
    @Option(help: "Values forecast per window, decoder steps (H).") var horizon = 12
    @Option(help: "Input features per step (D); with --print-variables only, data sets set it from their columns.")
    var inputDim: Int?
    @Option(help: "LSTM units (N).") var hidden = 64
    @Option(help: "Attentional hidden size (M, the seed's hidden_size2).") var hidden2 = 64

    func check() throws {
        for (name, v) in [
            ("batch", batch), ("window", window), ("horizon", horizon), ("hidden", hidden), ("hidden2", hidden2),
        ] where v < 1 {
            throw ValidationError("--\(name) must be at least 1, got \(v)")
        }
        if let d = inputDim, d < 1 { throw ValidationError("--input-dim must be at least 1, got \(d)") }
    }

    func config(inputDim: Int) -> ModelConfig {
        ModelConfig(
            batch: batch, window: window, horizon: horizon, inputDim: inputDim, hidden: hidden, hidden2: hidden2)
    }
}

/// Which series to train on and how to scale it.
struct DataOptions: ParsableArguments {
    @Option(help: "A built-in series (synthetic, co2, sunspots) or a CSV file path.") var data = "synthetic"
    @Option(help: "CSV column(s) to use; the first is forecast, all are inputs. Repeat for more features.") var column:
        [String] = []
    @Option(
        help:
            "auto (default: short trials of each, the lowest validation MSE wins), relative (per-window level removal), global (normalisation only) or seasonal (relative on the seasonal difference)."
    )
    var scaling = "auto"
    @Option(
        help:
            "Seasonal period in steps, for seasonal-naive and seasonal scaling; default: detected from the training part."
    )
    var season: Int?
    @Option(
        help: "The share of the training split, at its end, never trained on: it chooses the scaling and when to stop.")
    var validationFraction = 0.1

    func check() throws {
        guard scaling == "auto" || Scaling(rawValue: scaling) != nil else {
            throw ValidationError("--scaling must be auto, relative, global or seasonal; got '\(scaling)'")
        }
        if let season, season < 1 { throw ValidationError("--season must be at least 1, got \(season)") }
        guard (0..<0.5).contains(validationFraction) else {
            throw ValidationError("--validation-fraction must be in [0, 0.5), got \(validationFraction)")
        }
        if BuiltinSeries(rawValue: data) == nil && column.isEmpty {
            throw ValidationError("--data \(data) is a CSV file: name the column to forecast with --column")
        }
    }

    func load(seed: UInt64) throws -> Series {
        if let builtin = BuiltinSeries(rawValue: data) { return try builtin.load(seed: seed) }
        return try CSVSeries.load(path: data, columns: column)
    }

    /// The scaling to train with: the one given, or with `auto` the winner of short trials when `trials`
    /// is allowed (in-process training from scratch), relative otherwise.
    func choose(
        for series: Series, config: ModelConfig, steps: Int, seed: UInt64, optimizer: OptimizerConfig,
        form: DenseVariableForm, trials: Bool
    ) throws -> ScalingChoice {
        let season = self.season ?? ModelSelection.season(of: series, validationFraction: validationFraction)
        if let given = Scaling(rawValue: scaling) { return .fixed(given, season: season) }
        guard trials else {
            return .fixed(
                .relative, season: season,
                reason:
                    "scaling auto: relative, the default, as trials run only in-process from scratch (no --ps, no --restore)"
            )
        }
        return try ModelSelection.chooseScaling(
            for: series, config: config,
            options: SelectionOptions(
                steps: steps, seed: seed, optimizer: optimizer, season: season, validationFraction: validationFraction,
                form: form))
    }
}

/// When to stop: early stopping on the validation split.
struct StoppingOptions: ParsableArguments {
    @Option(
        help:
            "Stop after this many steps without a lower validation MSE and keep the best variables (in-process); 0 trains every step."
    )
    var patience = 1000

    func check() throws {
        guard patience >= 0 else { throw ValidationError("--patience must be at least 0, got \(patience)") }
    }

    var value: Int? { patience > 0 ? patience : nil }
}
