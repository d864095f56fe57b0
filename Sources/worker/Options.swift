import ArgumentParser
import Datasets
import Model

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
    @Option(help: "relative (per-window level removal, default) or global (normalisation only).") var scaling =
        "relative"

    func check() throws {
        guard Scaling(rawValue: scaling) != nil else {
            throw ValidationError("--scaling must be relative or global; got '\(scaling)'")
        }
        if BuiltinSeries(rawValue: data) == nil && column.isEmpty {
            throw ValidationError("--data \(data) is a CSV file: name the column to forecast with --column")
        }
    }

    var scalingValue: Scaling { Scaling(rawValue: scaling)! }

    func load(seed: UInt64) throws -> Series {
        if let builtin = BuiltinSeries(rawValue: data) { return try builtin.load(seed: seed) }
        return try CSVSeries.load(path: data, columns: column)
    }
}
