import Datasets
import Foundation
import Model
import SafeTensors
import VariableScopes

/// Everything a reader needs, beside the variables, to use a trained model on a series: its sizes, how
/// values were scaled (with the season and the normaliser fitted on the part trained on), which columns it
/// was trained on, and where the series was cut (so that the held-out rows, which training never used to
/// fit nor to choose, can be found again for calibration). Saved as JSON in a model file's metadata
/// (`model`) and told to the servers in hello, which record it in their checkpoints.
public struct ModelSpec: Codable, Sendable, Equatable {
    /// Bumped when a field's meaning changes.
    public static let currentVersion = 1
    public var version: Int
    public var config: ModelConfig
    public var scaling: Scaling
    public var season: Int?
    public var normalizer: Normalizer
    /// The training columns, target first.
    public var columns: [String]
    /// The series' name as loaded (`co2 (built-in)`, a CSV path).
    public var series: String
    /// Rows of the series trained on, and the fractions that cut it.
    public var rows: Int
    public var trainFraction: Double
    public var validationFraction: Double

    public init(
        config: ModelConfig, scaling: Scaling, season: Int?, normalizer: Normalizer, columns: [String], series: String,
        rows: Int, trainFraction: Double = 0.8, validationFraction: Double = 0.1
    ) {
        version = Self.currentVersion
        self.config = config
        self.scaling = scaling
        self.season = season
        self.normalizer = normalizer
        self.columns = columns
        self.series = series
        self.rows = rows
        self.trainFraction = trainFraction
        self.validationFraction = validationFraction
    }

    /// The spec of a model trained on `dataset`, cut from `series`.
    public init(config: ModelConfig, dataset: Dataset, series: Series, validationFraction: Double) {
        self.init(
            config: config, scaling: dataset.scaling, season: dataset.season, normalizer: dataset.normalizer,
            columns: series.columns, series: series.name, rows: series.count, validationFraction: validationFraction)
    }

    /// The first row of the held-out part: never used to fit nor to choose.
    public var heldOutStart: Int { Int(Double(rows) * trainFraction) }

    /// The JSON text recorded in files and hello.
    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Parses `json`'s text.
    public static func parse(_ text: String) -> ModelSpec? {
        try? JSONDecoder().decode(ModelSpec.self, from: Data(text.utf8))
    }
}

/// Writes `data` to `path` through a temporary file beside it and a rename, so a reader never sees half a
/// file. (Foundation's `.atomic` writes on Linux leave a `TemporaryDirectory.*` behind in the temporary
/// directory.)
/// - Throws: `SafeTensors.Error.unreadable` naming the path when it cannot be written.
public func writeReplacing(_ data: Data, to path: String) throws {
    let temporary = "\(path).tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: data) else {
        throw SafeTensors.Error.unreadable(path: path, reason: "cannot write \(temporary)")
    }
    guard rename(temporary, path) == 0 else {
        let e = errno
        unlink(temporary)
        throw SafeTensors.Error.unreadable(path: path, reason: "cannot rename \(temporary) to it: \(String(cString: strerror(e)))")
    }
}

/// A trained model on disk: every variable of the graph, keyed by its TensorFlow name, plus the data
/// normalisation and sizes in the safetensors metadata, and the whole `ModelSpec` under `model`: what
/// `forecast --model` needs to rebuild the model and its scaling without the training data.
public enum ModelFile {
    /// Writes `model`'s variables, `dataset`'s normaliser and `spec` to `path`.
    public static func save(_ model: Seq2Seq, dataset: Dataset, spec: ModelSpec? = nil, to path: String) throws {
        let c = model.config
        let encoder = JSONEncoder()
        var metadata = [
            "format": "scoped-trainer/seq2seq-attention",
            "series": dataset.series,
            "scaling": dataset.scaling.rawValue,
            "season": dataset.season.map(String.init) ?? "",
            "normalizer": String(decoding: try encoder.encode(dataset.normalizer), as: UTF8.self),
            "config": String(decoding: try encoder.encode(c), as: UTF8.self),
        ]
        if let spec { metadata["model"] = spec.json }
        // Whole variables under their own names, whatever the partitioning (as TensorFlow's Saver keys a
        // partitioned variable by its full name): a model file reads back into any partitioning, or none.
        var seen = Set<String>()
        var tensors: [(name: String, shape: [Int], scalars: [Float])] = []
        for v in model.graph.globalVariables {
            let whole = v.sliceInfo.flatMap { model.graph.storedVariable($0.fullName) } ?? v
            guard seen.insert(whole.name).inserted else { continue }
            whole.gatherParts()
            tensors.append((whole.name, whole.shape, Array(whole.value)))
        }
        try writeReplacing(SafeTensors.encode(tensors, metadata: metadata), to: path)
    }

    /// Reads the normaliser saved by `save`.
    public static func normalizer(at path: String) throws -> Normalizer? {
        guard let meta = try SafeTensors.metadata(path)["normalizer"] else { return nil }
        return try JSONDecoder().decode(Normalizer.self, from: Data(meta.utf8))
    }
}
