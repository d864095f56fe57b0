import Datasets
import Foundation
import Training

/// Where the model comes from.
public enum ModelSource: Sendable, Equatable {
    case file(String)
    case checkpoints(String)

    public func load() throws -> ForecastModel {
        switch self {
        case .file(let p): return try ForecastModel.load(modelFile: p)
        case .checkpoints(let d): return try ForecastModel.load(checkpoints: d)
        }
    }
}

/// Output formats of `forecast`.
public enum OutputFormat: String, Sendable, CaseIterable {
    case csv, json
}

/// The series a forecast reads, with its time axis.
public struct ForecastData: Sendable {
    public let series: Series
    public let axis: TimeAxis

    /// Loads `data` (a built-in name or a CSV path) with `columns` (default: the model's training columns),
    /// and its time column.
    /// - Throws: `DataError` for unusable data, `ForecastError.columns` when the columns differ from the model's.
    public static func load(_ data: String?, columns: [String], timeColumn: String?, spec: ModelSpec, seed: UInt64 = 0)
        throws -> ForecastData
    {
        let name = data ?? Self.builtinName(of: spec.series) ?? spec.series
        let wanted = columns.isEmpty ? spec.columns : columns
        let series: Series
        var text: String?
        if let builtin = BuiltinSeries(rawValue: name) {
            series = try builtin.load(seed: seed)
            text = builtin.csvText
        } else {
            series = try CSVSeries.load(path: name, columns: wanted)
            text = FileManager.default.contents(atPath: name).flatMap { String(data: $0, encoding: .utf8) }
        }
        guard series.columns == spec.columns else {
            throw ForecastError.columns(model: spec.columns, data: series.columns)
        }
        if let timeColumn, text == nil {
            throw ForecastError.badValue("--time-column \(timeColumn) needs CSV data; the built-in \(name) has no columns but its own")
        }
        let axis = try text.flatMap { try TimeAxis.read(csv: $0, column: timeColumn, dataColumns: series.columns) }
        if let timeColumn, let axis, axis.cells.count != series.count {
            throw ForecastError.badValue(
                "--time-column \(timeColumn) has \(axis.cells.count) rows where the series has \(series.count): name a column of the same rows, or leave --time-column out")
        }
        return ForecastData(
            series: series, axis: axis.flatMap { $0.cells.count == series.count ? $0 : nil } ?? .steps(series.count))
    }

    /// `co2` for `co2 (built-in)`.
    static func builtinName(of series: String) -> String? {
        guard series.hasSuffix(" (built-in)") else { return series == "synthetic" ? "synthetic" : nil }
        return String(series.dropLast(" (built-in)".count))
    }
}

/// One forecast from one origin, with its intervals and time labels.
public struct ForecastOutput: Sendable {
    public let column: String
    public let timeName: String
    public let originRow: Int
    public let originTime: String
    public let times: [String]
    public let values: [Double]
    /// Level → (lower, upper) per step.
    public let intervals: [(level: Double, lower: [Double], upper: [Double])]
    public let calibrationWindows: Int
    public let files: [String]

    public func csv() -> String {
        var header = [timeName, column]
        for i in intervals { header += ["lo_\(levelLabel(i.level))", "hi_\(levelLabel(i.level))"] }
        var lines = [header.joined(separator: ",")]
        for h in values.indices {
            var row = [times[h], format(values[h])]
            for i in intervals { row += [format(i.lower[h]), format(i.upper[h])] }
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() -> String {
        var steps: [[String: Any]] = []
        for h in values.indices {
            var s: [String: Any] = ["step": h + 1, "time": times[h], "value": values[h]]
            for i in intervals {
                s["lo_\(levelLabel(i.level))"] = i.lower[h]
                s["hi_\(levelLabel(i.level))"] = i.upper[h]
            }
            steps.append(s)
        }
        let object: [String: Any] = [
            "column": column, "time_column": timeName,
            "origin": ["row": originRow + 1, "time": originTime],
            "horizon": values.count, "levels": intervals.map { $0.level * 100 },
            "calibration_windows": calibrationWindows, "model_files": files, "forecast": steps,
        ]
        return jsonText(object)
    }
}

func format(_ v: Double) -> String { String(format: "%.8g", v) }

/// `forecast`'s one-shot uses: forecast from an origin, or backtest.
public enum ForecastRun {
    /// The 0-based origin row for `--origin`: a cell of the time column, `#N` for the 1-based row N, or a bare
    /// N when that cannot be read as a time: the data has no time column, or it holds dates. Under a column of
    /// integers (years) a bare number that is not one of them is refused rather than taken as a row, since
    /// `--origin 1990` meant as a year and mistyped must not forecast from row 1990.
    public static func originRow(_ text: String?, data: ForecastData) throws -> Int {
        guard let text else { return data.series.count - 1 }
        let rows = data.series.count
        if data.axis.kind != .steps, let r = data.axis.row(of: text) { return r }
        let numbered = text.hasPrefix("#")
        let digits = numbered ? String(text.dropFirst()) : text
        if case .integers = data.axis.kind, !numbered {
            let first = data.axis.cells.first ?? "", last = data.axis.cells.last ?? ""
            let hint = Int(digits) != nil ? "; for a row number write --origin '#\(digits)' (1...\(rows))" : ""
            throw ForecastError.badValue(
                "--origin \(text) is not a value of the time column \(data.axis.name) (\(first)...\(last))\(hint)")
        }
        guard let n = Int(digits), (1...rows).contains(n) else {
            throw ForecastError.badValue(
                data.axis.kind == .steps
                    ? "--origin \(text) is not a row number in 1...\(rows) (the data has no time column)"
                    : "--origin \(text) is neither a value of the time column \(data.axis.name) nor a row number in 1...\(rows) (#N or N)"
            )
        }
        return n - 1
    }

    /// The next `horizon` values after `origin`, with conformal intervals at `levels` calibrated on held-out
    /// windows whose targets end at or before the origin.
    /// - Throws: `ForecastError` for too few rows or an interval level the calibration part cannot give.
    public static func forecast(_ model: ForecastModel, data: ForecastData, origin: Int, levels: [Double]) throws
        -> ForecastOutput
    {
        let values = try model.forecast(model.histories(data.series, origins: [origin]))[0]
        var intervals: [(Double, [Double], [Double])] = []
        var windows = 0
        if !levels.isEmpty {
            let calibration = Backtest.calibrationOrigins(model, series: data.series, before: origin)
            let ci = try Backtest.intervals(model, series: data.series, origins: calibration, levels: levels)
            windows = ci.windows
            if let r = ci.refused.first {
                throw ForecastError.badValue(
                    "the \(levelLabel(r.level))% interval needs \(r.needed) calibration windows (held-out windows ending by the origin); there are \(ci.windows): choose a lower level or a later --origin"
                )
            }
            for level in levels {
                let w = ci.halfWidths[level]!
                intervals.append((level, zip(values, w).map { $0 - $1 }, zip(values, w).map { $0 + $1 }))
            }
        }
        let H = values.count
        return ForecastOutput(
            column: model.spec.columns[0], timeName: data.axis.name, originRow: origin,
            originTime: data.axis.label(origin),
            times: (1...H).map { data.axis.label(origin + $0) }, values: values,
            intervals: intervals.map { (level: $0.0, lower: $0.1, upper: $0.2) }, calibrationWindows: windows,
            files: model.files)
    }

    /// `--backtest`'s JSON.
    public static func json(_ b: Backtest, name: String) -> String {
        var object: [String: Any] = [
            "series": name, "origins": b.origins.count, "first_origin_row": b.origins.first! + 1,
            "last_origin_row": b.origins.last! + 1, "horizon": b.horizon, "mase_season": b.season,
            "mase_scale": b.scale,
            "metrics": Dictionary(
                uniqueKeysWithValues: b.rows.map { r in
                    (
                        r.method,
                        [
                            "mae": r.metrics.mae, "rmse": r.metrics.rmse, "smape": r.metrics.smape,
                            "mase": r.metrics.mase,
                        ]
                    )
                }),
        ]
        object["origin_rows"] = b.origins.map { $0 + 1 }
        object["forecasts"] = b.forecasts
        var ratios: [String: Any] = [:]
        for base in ["naive", "seasonal-naive"] {
            if let (a, r) = b.ratios(to: base) { ratios[base] = ["mae": a, "rmse": r] }
        }
        object["ratios"] = ratios
        if !b.levels.isEmpty {
            let first: Int = b.calibrationWindows.first ?? 0
            let last: Int = b.calibrationWindows.last ?? 0
            let windows: [String: Int] = ["first_origin": first, "last_origin": last]
            object["calibration_windows"] = windows
            var coverage: [String: Double] = [:]
            for (level, c) in b.coverage { coverage[levelLabel(level)] = c }
            object["coverage"] = coverage
            var refused: [String: Int] = [:]
            for (level, n) in b.refusedOrigins { refused[levelLabel(level)] = n }
            object["refused_origins"] = refused
        }
        return jsonText(object)
    }
}

/// `object` as pretty-printed JSON with sorted keys. JSON has no NaN or infinity: such numbers (a MASE whose
/// in-sample scale is 0, a ratio against a perfect baseline) become null, as pandas writes them, rather than
/// failing the whole document.
func jsonText(_ object: Any) -> String {
    let clean = jsonSafe(object)
    guard let data = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys, .prettyPrinted])
    else { return "{}\n" }
    return String(decoding: data, as: UTF8.self) + "\n"
}

/// `value` with every non-finite floating-point number replaced by null, through arrays and dictionaries.
func jsonSafe(_ value: Any) -> Any {
    switch value {
    case let d as Double: return d.isFinite ? d : NSNull()
    case let f as Float: return f.isFinite ? Double(f) : NSNull()
    case let a as [Any]: return a.map(jsonSafe)
    case let o as [String: Any]: return o.mapValues(jsonSafe)
    default: return value
    }
}
