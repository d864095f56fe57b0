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

    /// The first row of the held-out part: never used to fit nor to choose. Clamped to the rows, so a
    /// description that `problem` would refuse still cannot trap here.
    public var heldOutStart: Int {
        let n = max(0, rows)
        let cut = Double(n) * trainFraction
        guard cut > 0 else { return 0 }  // also NaN
        return cut >= Double(n) ? n : Int(cut)
    }

    /// The first field a reader cannot use, named with its value and the range it must lie in; nil when
    /// every field is usable. Model files and checkpoints are read from disk and may have been edited.
    public var problem: String? {
        let c = config
        let sizes: [(String, Int, ClosedRange<Int>)] = [
            ("config.window", c.window, 1...4096), ("config.horizon", c.horizon, 1...4096),
            ("config.hidden", c.hidden, 1...4096), ("config.hidden2", c.hidden2, 1...4096),
            ("config.inputDim", c.inputDim, 1...1024), ("rows", rows, 1...1_000_000_000),
        ]
        for (name, value, range) in sizes where !range.contains(value) {
            return "\(name) is \(value), not in \(range.lowerBound)...\(range.upperBound)"
        }
        if version < 1 || version > Self.currentVersion {
            return "version is \(version); this reader knows versions 1...\(Self.currentVersion): use the same version's tools"
        }
        if !(trainFraction > 0 && trainFraction < 1) { return "trainFraction is \(trainFraction), not in (0, 1)" }
        if !(validationFraction >= 0 && validationFraction < 1) {
            return "validationFraction is \(validationFraction), not in [0, 1)"
        }
        if columns.count != c.inputDim { return "columns has \(columns.count) names for config.inputDim \(c.inputDim)" }
        if normalizer.mean.count != c.inputDim || normalizer.std.count != c.inputDim {
            return "normalizer has \(normalizer.mean.count) means and \(normalizer.std.count) deviations for config.inputDim \(c.inputDim)"
        }
        // Values are scaled in float32: a mean or deviation past 1e30 overflows it.
        if let m = normalizer.mean.first(where: { !($0.isFinite && abs($0) <= 1e30) }) {
            return "normalizer.mean holds \(m), not a finite number within ±1e30"
        }
        if let s = normalizer.std.first(where: { !($0.isFinite && $0 >= 1e-30 && $0 <= 1e30) }) {
            return "normalizer.std holds \(s), not a number from 1e-30 to 1e30"
        }
        // The season is used whatever the scaling (backtests scale MASE by seasonal-naive with it).
        if let p = season, !(1...100_000).contains(p) {
            return "season is \(p), not in 1...100000"
        }
        if scaling.needsSeason && season == nil {
            return "season is missing; \(scaling.rawValue) scaling needs one in 1...100000"
        }
        return nil
    }

    /// The JSON text recorded in files and hello.
    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Parses `json`'s text.
    public static func parse(_ text: String) -> ModelSpec? { try? decode(text) }

    /// Parses `json`'s text, or says which field is missing or of the wrong kind.
    /// - Throws: `ModelSpecError` naming the field.
    public static func decode(_ text: String) throws -> ModelSpec {
        do { return try JSONDecoder().decode(ModelSpec.self, from: Data(text.utf8)) } catch let e as DecodingError {
            throw ModelSpecError(reason: Self.describe(e))
        } catch { throw ModelSpecError(reason: "\(error)") }
    }

    static func describe(_ e: DecodingError) -> String {
        let path = { (c: DecodingError.Context) in
            c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let k, let c):
            return "field \((path(c).isEmpty ? "" : path(c) + ".") + k.stringValue) is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return path(c).isEmpty ? c.debugDescription : "field \(path(c)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}

/// A model description that is there but cannot be read: the field and what is wrong with it.
public struct ModelSpecError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public var description: String { reason }
}

/// Writes `data` to `path` through a temporary file beside it and a rename, so a reader never sees half a
/// file. (Foundation's `.atomic` writes on Linux leave a `TemporaryDirectory.*` behind in the temporary
/// directory.)
/// - Throws: `SafeTensors.Error.unwritable` naming the path when it cannot be written.
public func writeReplacing(_ data: Data, to path: String) throws {
    if let problem = unwritableReason(path) { throw SafeTensors.Error.unwritable(path: path, reason: problem) }
    let temporary = "\(path).tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: data) else {
        throw SafeTensors.Error.unwritable(path: path, reason: "cannot create \(temporary) beside it")
    }
    guard rename(temporary, path) == 0 else {
        let e = errno
        unlink(temporary)
        throw SafeTensors.Error.unwritable(path: path, reason: "cannot rename \(temporary) to it: \(String(cString: strerror(e)))")
    }
}

/// Why `path` cannot be written, checked before any work that would be lost: its directory is missing, is
/// not a directory or is not writable, or the path is a directory. nil when it looks writable.
public func unwritableReason(_ path: String) -> String? {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        return "it is a directory; give a file name"
    }
    let directory = (path as NSString).deletingLastPathComponent
    let dir = directory.isEmpty ? "." : directory
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) else {
        return "directory \(dir) does not exist; create it first"
    }
    guard isDirectory.boolValue else { return "\(dir) is not a directory" }
    guard access(dir, W_OK) == 0 else { return "directory \(dir) is not writable" }
    return nil
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
        // A checksum, as checkpoints carry: a flipped bit in a weight would otherwise change forecasts silently.
        try writeReplacing(SafeTensors.encode(tensors, metadata: metadata, checksum: true), to: path)
    }

    /// Reads the normaliser saved by `save`.
    public static func normalizer(at path: String) throws -> Normalizer? {
        guard let meta = try SafeTensors.metadata(path)["normalizer"] else { return nil }
        return try JSONDecoder().decode(Normalizer.self, from: Data(meta.utf8))
    }
}
