import Datasets
import Foundation
import Model
import SafeTensors
import Training
import VariableScopes

/// Why a model could not be loaded or used; each names the file, directory, column or size.
public enum ForecastError: Error, CustomStringConvertible, Equatable {
    /// The model file or checkpoint lacks the description `forecast` needs (written by an older version).
    case noSpec(String)
    case unreadable(String, reason: String)
    case noCheckpoints(directory: String)
    /// The newest checkpoints do not hold every variable yet (a server has not written one).
    case incomplete(directory: String, missing: String)
    case shape(variable: String, file: [Int], model: [Int])
    /// The data's columns are not the ones the model was trained on.
    case columns(model: [String], data: [String])
    /// Too few rows for the history the model needs.
    case tooFewRows(have: Int, need: Int, what: String)
    /// `--horizon` differs from the model's.
    case horizon(asked: Int, model: Int)
    /// A value that is not a finite number (or is too large to scale in float32).
    case badValue(String)

    public var description: String {
        switch self {
        case .noSpec(let p):
            return
                "\(p) does not describe its model (no 'model' metadata): save it again with this version's worker --save, or train again against servers of this version"
        case .unreadable(let p, let r): return "cannot read \(p): \(r)"
        case .noCheckpoints(let d): return "no .safetensors checkpoints in \(d): pass the servers' --checkpoint-dir"
        case .incomplete(let d, let m): return "the newest checkpoints in \(d) do not hold variable \(m) yet"
        case .shape(let v, let f, let m):
            return "variable \(v) has shape \(f) in the file and \(m) in the model it describes"
        case .columns(let m, let d):
            return
                "the model was trained on columns \(m.joined(separator: ", ")); the data has \(d.joined(separator: ", ")): pass the same --column names"
        case .tooFewRows(let h, let n, let w):
            return "\(w): \(h) rows, but the model needs \(n) (its window, and its season with seasonal scaling)"
        case .horizon(let a, let m):
            return
                "--horizon \(a) differs from the model's horizon \(m): a model forecasts the horizon it was trained for"
        case .badValue(let s): return s
        }
    }
}

/// A trained forecaster ready to use: the variables, the `ModelSpec` that says how to scale values in and
/// out, and an inference copy of the model built for a fixed batch. Not thread-safe: one caller at a time
/// (`Forecaster` serialises).
public final class ForecastModel: @unchecked Sendable {
    public let spec: ModelSpec
    /// Where it came from: the model file, or each server's checkpoint file.
    public let files: [String]
    /// Updates applied by the servers, per file (empty for a model file).
    public let updates: [UInt64]
    /// When it was loaded (seconds since the epoch) and the newest file's modification time.
    public let loadedAt: Date
    public let newestFileDate: Date
    /// Inference copies for batches of 1, 8 and 64 windows: a lone window does not pay for 64.
    let models: [Seq2Seq]
    /// TensorFlow name → (shape, values), as loaded.
    public let values: [String: (shape: [Int], scalars: [Float])]

    /// Windows per forward pass of the inference models.
    public static let batches = [1, 8, 64]
    public static let batch = 64

    /// The rows of history one forecast needs: the window, and with seasonal scaling the seasons before it
    /// (enough for the seasonal difference of every input and every step's offset; `window + season` when the
    /// horizon is at most the season).
    public var inputLength: Int { Self.inputLength(spec) }

    public static func inputLength(_ spec: ModelSpec) -> Int {
        let T = spec.config.window
        guard spec.scaling.needsSeason, let P = spec.season, P > 0 else { return T }
        let S = Baseline.back(step: spec.config.horizon, period: P)
        return max(T + P, S + 1)
    }

    init(spec: ModelSpec, values: [String: (shape: [Int], scalars: [Float])], files: [String], updates: [UInt64]) throws
    {
        self.spec = spec
        self.files = files
        self.updates = updates
        self.values = values
        loadedAt = Date()
        newestFileDate =
            files.compactMap { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }
            .max()
            ?? Date()
        let config = spec.config
        let source = files.first ?? "?"
        if let problem = spec.problem {
            throw ForecastError.unreadable(source, reason: "its model description's \(problem)")
        }
        // Each size is in range, but an edited window, horizon and hidden together could still ask for more
        // than the machine has across the inference copies.
        let bytes = config.activationBytes(batch: Self.batches.reduce(0, +))
        guard bytes < ModelConfig.activationLimit else {
            throw ForecastError.unreadable(
                source,
                reason: "its model description's config (window \(config.window), horizon \(config.horizon), hidden \(config.hidden), hidden2 \(config.hidden2)) would need about \(Int(bytes / 1e9)) GB of activations to forecast")
        }
        // The sizes must be the variables' before any model is built: an edited description (hidden 4096 over a
        // 64-unit file) would otherwise allocate gigabytes for three inference copies before being refused. The
        // names come from a one-unit copy of the same graph (cheap; names do not depend on sizes). A variable
        // that is not there yet is `incomplete` (a server beside a run may not have written its part), one of
        // another shape is `shape`.
        var tiny = config
        (tiny.batch, tiny.window, tiny.horizon, tiny.hidden, tiny.hidden2) = (1, 1, 1, 1, 1)
        let names = try Seq2Seq(tiny, graph: Graph(seed: 0)).graph.trainableVariables.map(\.name)
        if names.count == config.variableShapes.count {
            for (name, shape) in zip(names, config.variableShapes) {
                guard let e = values[name] else {
                    // Checkpoints beside a run may not all be written yet; a model file will never grow the variable.
                    if updates.isEmpty {
                        throw ForecastError.unreadable(
                            source, reason: "variable \(name) is missing: the file does not hold the model it describes")
                    }
                    throw ForecastError.incomplete(
                        directory: (source as NSString).deletingLastPathComponent, missing: name)
                }
                guard e.shape == shape else { throw ForecastError.shape(variable: name, file: e.shape, model: shape) }
            }
        }
        var built: [Seq2Seq] = []
        for b in Self.batches {
            var c: ModelConfig = config
            c.batch = b
            let m = try Seq2Seq(c, graph: Graph(seed: 0))
            try Self.assign(values, to: m, source: files.first ?? "?")
            built.append(m)
        }
        models = built
    }

    /// Sets every trainable variable of `m` from `values`.
    static func assign(_ values: [String: (shape: [Int], scalars: [Float])], to m: Seq2Seq, source: String) throws {
        for v in m.graph.trainableVariables {
            guard let e = values[v.name] else { throw ForecastError.incomplete(directory: source, missing: v.name) }
            guard e.shape == v.shape else { throw ForecastError.shape(variable: v.name, file: e.shape, model: v.shape) }
            guard e.scalars.allSatisfy({ $0.isFinite }) else {
                throw ForecastError.unreadable(source, reason: "variable \(v.name) holds values that are not finite")
            }
            v.assign(e.scalars)
        }
    }

    /// Loads a model file written by `worker --save`.
    /// - Throws: `ForecastError` (no description, unreadable, shapes), `SafeTensors.Error`.
    public static func load(modelFile path: String) throws -> ForecastModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForecastError.unreadable(path, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw ForecastError.unreadable(
                path, reason: "it is a directory: give the model file (worker --save), or --restore for a checkpoint directory")
        }
        // One read, which verifies the checksum `worker --save` writes before anything in the file is trusted
        // (files from before it carry none and are read as they are): a flipped bit in the description is then
        // "damaged", not a field error.
        let file = try SafeTensors.load(path)
        guard let text = file.metadata["model"], !text.isEmpty else { throw ForecastError.noSpec(path) }
        let spec = try describedModel(text, file: path)
        return try ForecastModel(
            spec: spec, values: file.tensors.mapValues { ($0.shape, $0.scalars) }, files: [path], updates: [])
    }

    /// The model description in a file's `model` metadata.
    /// - Throws: `ForecastError.unreadable` naming the file and the field that cannot be read.
    static func describedModel(_ text: String, file: String) throws -> ModelSpec {
        do { return try ModelSpec.decode(text) } catch {
            throw ForecastError.unreadable(
                file, reason: "its model description (the 'model' metadata) cannot be read: \(error)")
        }
    }

    /// The newest file of each server in `directory` (highest `sequence` in its metadata).
    public static func newestCheckpoints(in directory: String) -> [String] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".safetensors")
        }.sorted()
        var newest: [String: (Int, String)] = [:]
        for f in files {
            let path = "\(directory)/\(f)"
            guard let meta = try? SafeTensors.metadata(path), let server = meta["server"],
                let seq = meta["sequence"].flatMap({ Int($0) })
            else { continue }
            if (newest[server]?.0 ?? -1) < seq { newest[server] = (seq, path) }
        }
        return newest.keys.sorted().map { newest[$0]!.1 }
    }

    /// Loads the newest checkpoint of each server in `directory` (the servers' `--checkpoint-dir`); every
    /// model variable must be in one of them.
    /// - Throws: `ForecastError.noCheckpoints`, `.noSpec` (no server recorded the model), `.incomplete` (a
    ///   variable or a part of one is in none of them yet), `.unreadable` and `.shape` (a description or a
    ///   variable that cannot be used), `SafeTensors.Error` (a damaged file).
    public static func load(checkpoints directory: String) throws -> ForecastModel {
        // Servers beside a run replace their files (`--keep-checkpoints` removes the oldest): a file listed a
        // moment ago can be gone when read, or gone before its header was, leaving its server out of the set.
        // That is a newer set arriving, not a missing input: list again, about a second in all.
        var attempt = 0
        while true {
            do { return try loadOnce(checkpoints: directory) } catch SafeTensors.Error.unreadable(let path, _)
                where attempt < 10 && !FileManager.default.fileExists(atPath: path)
            {
                attempt += 1
            } catch ForecastError.incomplete where attempt < 10 {
                attempt += 1
            }
            Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
        }
    }

    static func loadOnce(checkpoints directory: String) throws -> ForecastModel {
        let files = newestCheckpoints(in: directory)
        guard !files.isEmpty else { throw ForecastError.noCheckpoints(directory: directory) }
        var spec: ModelSpec?
        var values: [String: (shape: [Int], scalars: [Float])] = [:]
        var updates: [UInt64] = []
        var slices: [String: TensorSlice] = [:]
        var held: [(path: String, names: [String], placement: String?)] = []
        for f in files {
            let file = try SafeTensors.load(f)  // verified before its description is trusted
            held.append((f, file.tensors.keys.sorted(), file.metadata["placement"]))
            if let reason = TensorSlice.duplicate(in: held) { throw ForecastError.unreadable(directory, reason: reason) }
            let meta = file.metadata
            if spec == nil, let text = meta["model"], !text.isEmpty { spec = try describedModel(text, file: f) }
            updates.append(meta["updates"].flatMap { UInt64($0) } ?? 0)
            slices.merge(TensorSlice.records(in: meta)) { a, _ in a }
            for (name, e) in file.tensors where !name.hasPrefix("optimizer/") && values[name] == nil {
                values[name] = (e.shape, e.scalars)
            }
        }
        guard let spec else { throw ForecastError.noSpec(directory) }
        // A partitioned job's parts, put back in their wholes: the model is built unpartitioned. Parts that no
        // server has written yet (beside a run) are incomplete, to wait for, not unreadable.
        do { values = try TensorSlice.assemble(values, slices: slices) } catch TensorSlice.Error.coverage(let whole, _, _) {
            throw ForecastError.incomplete(directory: directory, missing: whole)
        } catch {
            throw ForecastError.unreadable(files[0], reason: "\(error)")
        }
        return try ForecastModel(spec: spec, values: values, files: files, updates: updates)
    }

    /// Forecasts the next `horizon` values after each history, in the series' own units.
    /// - Parameter histories: each `inputLength` rows of `spec.columns.count` values, oldest first.
    /// - Returns: one array of `horizon` values per history.
    /// - Throws: `ForecastError.tooFewRows` or `.badValue` naming the window.
    public func forecast(_ histories: [[[Double]]]) throws -> [[Double]] {
        let c = spec.config
        let (T, H, D, L) = (c.window, c.horizon, c.inputDim, inputLength)
        let B = Self.batch
        let n = spec.normalizer
        var out: [[Double]] = []
        out.reserveCapacity(histories.count)
        var start = 0
        while start < histories.count {
            let rows = min(B, histories.count - start)
            var model: Seq2Seq = models[models.count - 1]
            for m in models where m.config.batch >= rows {
                model = m
                break
            }
            var offsets = [[Double]](repeating: [], count: rows)
            let x = model.x.value
            x.update(repeating: 0)
            for r in 0..<rows {
                let hist = histories[start + r]
                guard hist.count == L else {
                    throw ForecastError.tooFewRows(have: hist.count, need: L, what: "window \(start + r + 1)")
                }
                // float32 from here, in the order the ONNX graph computes: the two then differ only inside
                // the network (matrix products and activations), not in how values are scaled.
                var z = [[Float]](repeating: [Float](repeating: 0, count: D), count: L)
                for t in 0..<L {
                    guard hist[t].count == D else {
                        throw ForecastError.badValue(
                            "window \(start + r + 1), row \(t + 1): \(hist[t].count) values, the model takes \(D)")
                    }
                    for k in 0..<D {
                        let v = hist[t][k]
                        guard v.isFinite, abs(v) <= 1e30 else {
                            throw ForecastError.badValue(
                                "window \(start + r + 1), row \(t + 1): \(v) is not a finite number up to 1e30")
                        }
                        z[t][k] = (Float(v) - Float(n.mean[k])) / Float(n.std[k])
                    }
                }
                let inputs = Self.scaleFloat(z, spec: spec)
                offsets[r] = Self.rawOffsets(hist, spec: spec)
                for i in 0..<(T * D) { x[r * T * D + i] = inputs[i] }
            }
            model.forward()
            let p = model.predictions.value
            for r in 0..<rows {
                let std0 = Float(n.std[0])
                out.append((0..<H).map { h in Double(p[r * H + h] * std0 + Float(offsets[r][h])) })
            }
            start += rows
        }
        return out
    }

    /// The model's inputs ([T, D], row-major) and the offsets that turn its outputs back into normalised
    /// values, for one normalised history of `inputLength` rows: exactly `Dataset.windows`' arithmetic.
    static func scale(_ z: [[Double]], spec: ModelSpec) -> (inputs: [Double], offsets: [Double]) {
        let (T, H) = (spec.config.window, spec.config.horizon)
        let e = z.count - 1
        let P = spec.season ?? 0
        var inputs: [Double] = []
        inputs.reserveCapacity(T * z[0].count)
        for t in (e - T + 1)...e {
            for k in 0..<z[0].count {
                switch spec.scaling {
                case .global: inputs.append(z[t][k])
                case .relative: inputs.append(z[t][k] - z[e][k])
                case .seasonal: inputs.append((z[t][k] - z[t - P][k]) - (z[e][k] - z[e - P][k]))
                case .seasonalDifference: inputs.append(z[t][k] - z[t - P][k])
                }
            }
        }
        let offsets = (1...H).map { h -> Double in
            switch spec.scaling {
            case .global: return 0
            case .relative: return z[e][0]
            case .seasonal:
                let back = Baseline.back(step: h, period: P)
                return z[e][0] + z[e + h - back][0] - z[e - back][0]
            case .seasonalDifference: return z[e + h - Baseline.back(step: h, period: P)][0]
            }
        }
        return (inputs, offsets)
    }

    /// `scale`'s inputs in float32, from float32 normalised values, operation for operation as the ONNX graph.
    static func scaleFloat(_ z: [[Float]], spec: ModelSpec) -> [Float] {
        let T = spec.config.window
        let e = z.count - 1
        let P = spec.season ?? 0
        var inputs: [Float] = []
        inputs.reserveCapacity(T * z[0].count)
        for t in (e - T + 1)...e {
            for k in 0..<z[0].count {
                switch spec.scaling {
                case .global: inputs.append(z[t][k])
                case .relative: inputs.append(z[t][k] - z[e][k])
                case .seasonal:
                    let a: Float = z[t][k] - z[t - P][k]
                    let b: Float = z[e][k] - z[e - P][k]
                    inputs.append(a - b)
                case .seasonalDifference: inputs.append(z[t][k] - z[t - P][k])
                }
            }
        }
        return inputs
    }

    /// The offsets of `scale` in the series' own units (offset × std + mean), taken from the raw history so
    /// that a forecast is the model's output times the standard deviation plus a level the history holds
    /// (the last value, or it plus last season's change): no cancellation near zero, in Swift or in ONNX.
    static func rawOffsets(_ history: [[Double]], spec: ModelSpec) -> [Double] {
        let e = history.count - 1
        let P = spec.season ?? 0
        return (1...spec.config.horizon).map { h -> Double in
            switch spec.scaling {
            case .global: return Double(Float(spec.normalizer.mean[0]))
            case .relative: return Double(Float(history[e][0]))
            case .seasonal:
                let back = Baseline.back(step: h, period: P)
                let a: Float = Float(history[e][0]) + Float(history[e + h - back][0])
                return Double(a - Float(history[e - back][0]))
            case .seasonalDifference: return Double(Float(history[e + h - Baseline.back(step: h, period: P)][0]))
            }
        }
    }

    /// The histories of `series` ending at each of `origins` (0-based row of the last observed value).
    public func histories(_ series: Series, origins: [Int]) throws -> [[[Double]]] {
        let L = inputLength
        return try origins.map { e in
            guard e >= L - 1, e < series.count else {
                throw ForecastError.tooFewRows(have: e + 1, need: L, what: "origin at row \(e + 1)")
            }
            return Array(series.values[(e - L + 1)...e])
        }
    }

    /// Checks that `series` has the columns the model was trained on.
    public func check(_ series: Series) throws {
        guard series.columns.count == spec.columns.count else {
            throw ForecastError.columns(model: spec.columns, data: series.columns)
        }
    }
}
