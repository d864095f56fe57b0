import Datasets
import Foundation
import Training

/// Point-forecast errors over rolling origins, as forecasting competitions report them.
///
/// - MAE and RMSE: mean absolute and root mean squared error over every origin and step.
/// - sMAPE: the M4 competition's symmetric MAPE (Makridakis, Spiliotis and Assimakopoulos, "The M4
///   Competition", IJF 2020, eq. 1): 200 |y − ŷ| / (|y| + |ŷ|), in percent, averaged over origins and steps.
/// - MASE: the same paper's eq. 2 (Hyndman and Koehler 2006): MAE divided by the in-sample MAE of the
///   seasonal-naive forecast, (1 / (n − m)) Σ_{t=m+1..n} |y_t − y_{t−m}|, over the rows before the held-out
///   part, with m the model's season (1 without one).
public struct ForecastMetrics: Sendable, Codable, Equatable {
    public var mae: Double
    public var rmse: Double
    public var smape: Double
    public var mase: Double

    /// - Parameters:
    ///   - forecasts, truths: [origin][step] in series units.
    ///   - scale: the in-sample seasonal-naive MAE.
    public init(forecasts: [[Double]], truths: [[Double]], scale: Double) {
        var abs = 0.0, sq = 0.0, sm = 0.0
        var n = 0
        for (f, y) in zip(forecasts, truths) {
            for (p, t) in zip(f, y) {
                let e = t - p
                abs += Swift.abs(e)
                sq += e * e
                let d = Swift.abs(t) + Swift.abs(p)
                sm += d > 0 ? 200 * Swift.abs(e) / d : 0
                n += 1
            }
        }
        let c = Double(max(n, 1))
        mae = abs / c
        rmse = (sq / c).squareRoot()
        smape = sm / c
        mase = scale > 0 ? mae / scale : .nan
    }
}

/// A rolling-origin backtest: the model and the naive baselines forecast from each origin, one row apart.
public struct Backtest: Sendable {
    public struct Row: Sendable, Codable {
        public let method: String
        public let metrics: ForecastMetrics
    }

    /// 0-based rows of the last observed value of each evaluated window.
    public let origins: [Int]
    public let horizon: Int
    public let season: Int
    /// The MASE scale (in-sample seasonal-naive MAE over rows before `heldOutStart`).
    public let scale: Double
    public let rows: [Row]
    /// Level → share of (origin, step) pairs whose value fell inside the conformal interval.
    public let coverage: [Double: Double]
    public let intervals: ConformalIntervals?
    public let calibrationOrigins: [Int]
    /// Every forecast, for plots and JSON: [origin][step].
    public let forecasts: [[Double]]

    /// The model's MAE and RMSE over `baseline`'s.
    public func ratios(to method: String) -> (mae: Double, rmse: Double)? {
        guard let m = rows.first?.metrics, let b = rows.first(where: { $0.method == method })?.metrics else { return nil }
        return (m.mae / b.mae, m.rmse / b.rmse)
    }

    /// Runs the backtest of `model` on `series`.
    /// - Parameters:
    ///   - last: evaluate the last `last` origins whose whole horizon is known; nil: the second half of the
    ///     held-out part (its first half calibrates the intervals).
    ///   - levels: interval levels as fractions; calibrated on held-out windows whose targets end at or
    ///     before the first evaluated origin.
    public static func run(_ model: ForecastModel, on series: Series, last: Int?, levels: [Double]) throws -> Backtest {
        let H = model.spec.config.horizon
        let n = series.count
        let L = model.inputLength
        let lastOrigin = n - 1 - H
        let heldOut = min(max(model.spec.heldOutStart, L), n)
        let firstOrigin: Int
        if let last {
            firstOrigin = lastOrigin - last + 1
        } else {
            let a = max(heldOut - 1, L - 1)
            firstOrigin = a + (lastOrigin - a + 1) / 2
        }
        guard lastOrigin >= L - 1, firstOrigin >= L - 1, firstOrigin <= lastOrigin else {
            throw ForecastError.tooFewRows(have: n, need: L + H + (last ?? 2), what: "backtest of \(series.name)")
        }
        let origins = Array(firstOrigin...lastOrigin)
        let y = series.values.map { $0[0] }
        let truths = origins.map { e in (1...H).map { y[e + $0] } }
        let forecasts = try model.forecast(model.histories(series, origins: origins))
        let m = model.spec.season ?? 1
        let scaleEnd = min(model.spec.heldOutStart, n)
        var scaleSum = 0.0
        if scaleEnd > m { for t in m..<scaleEnd { scaleSum += abs(y[t] - y[t - m]) } }
        let scale = scaleEnd > m ? scaleSum / Double(scaleEnd - m) : .nan
        var rows = [Row(method: "model", metrics: ForecastMetrics(forecasts: forecasts, truths: truths, scale: scale))]
        let naive = origins.map { e in (1...H).map { h in Baseline.naive.forecast(y, origin: e, window: 0, step: h) } }
        rows.append(Row(method: "naive", metrics: ForecastMetrics(forecasts: naive, truths: truths, scale: scale)))
        if let p = model.spec.season {
            let sn = origins.map { e in (1...H).map { h in Baseline.seasonalNaive(period: p).forecast(y, origin: e, window: 0, step: h) } }
            rows.append(Row(method: "seasonal-naive", metrics: ForecastMetrics(forecasts: sn, truths: truths, scale: scale)))
        }
        var intervals: ConformalIntervals?
        var coverage: [Double: Double] = [:]
        let calibration = calibrationOrigins(model, series: series, before: firstOrigin)
        if !levels.isEmpty {
            let ci = try Self.intervals(model, series: series, origins: calibration, levels: levels)
            intervals = ci
            for (level, widths) in ci.halfWidths {
                var inside = 0
                for (f, t) in zip(forecasts, truths) {
                    for h in 0..<H where abs(t[h] - f[h]) <= widths[h] { inside += 1 }
                }
                coverage[level] = Double(inside) / Double(max(1, origins.count * H))
            }
        }
        return Backtest(
            origins: origins, horizon: H, season: m, scale: scale, rows: rows, coverage: coverage, intervals: intervals,
            calibrationOrigins: calibration, forecasts: forecasts)
    }

    /// Calibration windows: origins whose inputs and whole horizon lie after the rows training fitted on and
    /// chose with (their targets in the held-out part), and whose targets end at or before `before`.
    public static func calibrationOrigins(_ model: ForecastModel, series: Series, before: Int) -> [Int] {
        let H = model.spec.config.horizon
        let first = max(model.spec.heldOutStart - 1, model.inputLength - 1)
        let last = min(before, series.count - 1) - H
        return last >= first ? Array(first...last) : []
    }

    /// Conformal intervals from the model's residuals at `origins`.
    public static func intervals(_ model: ForecastModel, series: Series, origins: [Int], levels: [Double]) throws
        -> ConformalIntervals
    {
        let H = model.spec.config.horizon
        let y = series.values.map { $0[0] }
        let f = origins.isEmpty ? [] : try model.forecast(model.histories(series, origins: origins))
        let residuals = zip(origins, f).map { e, p in (0..<H).map { abs(y[e + 1 + $0] - p[$0]) } }
        return ConformalIntervals(residuals: residuals, horizon: H, levels: levels)
    }

    /// The table printed by `forecast --backtest`.
    public func table(name: String) -> String {
        var lines = [
            "backtest of \(name): \(origins.count) origins (rows \(origins.first! + 1)...\(origins.last! + 1)), horizon \(horizon); MASE scaled by the in-sample seasonal-naive MAE with m = \(season)\(season == 1 ? " (no season)" : "")",
            "method".padding(toLength: 16, withPad: " ", startingAt: 0) + "          MAE         RMSE   sMAPE %     MASE",
        ]
        for r in rows {
            lines.append(
                r.method.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(format: " %12.5g %12.5g %9.3f %8.4f", r.metrics.mae, r.metrics.rmse, r.metrics.smape, r.metrics.mase))
        }
        for base in ["naive", "seasonal-naive"] {
            if let (a, b) = ratios(to: base) {
                lines.append(String(format: "model / %@: MAE ratio %.3f, RMSE ratio %.3f", base, a, b))
            }
        }
        if let ci = intervals {
            for level in coverage.keys.sorted() {
                lines.append(
                    String(format: "coverage of the %@%% interval: %.1f%% (nominal %@%%), calibrated on %d held-out windows", levelLabel(level), 100 * coverage[level]!, levelLabel(level), ci.windows))
            }
            for r in ci.refused {
                lines.append("the \(levelLabel(r.level))% interval is refused: \(ci.windows) calibration windows, it needs \(r.needed)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
