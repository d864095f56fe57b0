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
        var abs = 0.0
        var sq = 0.0
        var sm = 0.0
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
    public let levels: [Double]
    /// Level → origins where too few calibration windows were known to give it (left out of its coverage).
    public let refusedOrigins: [Double: Int]
    /// The calibration windows known at each origin.
    public let calibrationWindows: [Int]
    /// Every forecast, for plots and JSON: [origin][step].
    public let forecasts: [[Double]]

    /// The model's MAE and RMSE over `baseline`'s.
    public func ratios(to method: String) -> (mae: Double, rmse: Double)? {
        guard let m = rows.first?.metrics, let b = rows.first(where: { $0.method == method })?.metrics else {
            return nil
        }
        return (errorRatio(m.mae, over: b.mae), errorRatio(m.rmse, over: b.rmse))
    }

    /// Runs the backtest of `model` on `series`.
    /// - Parameters:
    ///   - last: evaluate the last `last` origins whose whole horizon is known; nil: the second half of the
    ///     held-out part (so that the first origin already has half the held-out windows to calibrate on).
    ///   - levels: interval levels as fractions; at each origin calibrated on the held-out windows whose
    ///     targets end by that origin, as `forecast --origin` does.
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
            let sn = origins.map { e in
                (1...H).map { h in Baseline.seasonalNaive(period: p).forecast(y, origin: e, window: 0, step: h) }
            }
            rows.append(
                Row(method: "seasonal-naive", metrics: ForecastMetrics(forecasts: sn, truths: truths, scale: scale)))
        }
        // Intervals as `forecast --origin e --interval` would give them at each origin: calibrated on every
        // held-out window whose targets end by that origin (so the calibration part grows as the origins
        // advance, and never reaches a target the origin does not know).
        var coverage: [Double: Double] = [:]
        var refusedOrigins: [Double: Int] = [:]
        var windowsUsed: [Int] = []
        let calibration: [Int] = calibrationOrigins(model, series: series, before: lastOrigin)
        if !levels.isEmpty {
            var f: [[Double]] = []
            if !calibration.isEmpty { f = try model.forecast(model.histories(series, origins: calibration)) }
            let residuals: [[Double]] = absoluteErrors(y, origins: calibration, forecasts: f)
            (coverage, refusedOrigins, windowsUsed) = rollingCoverage(
                origins: origins, forecasts: forecasts, truths: truths, calibration: calibration, residuals: residuals,
                levels: levels, horizon: H)
        }
        return Backtest(
            origins: origins, horizon: H, season: m, scale: scale, rows: rows, coverage: coverage, levels: levels,
            refusedOrigins: refusedOrigins, calibrationWindows: windowsUsed, forecasts: forecasts)
    }

    /// |y − ŷ| per window and step.
    static func absoluteErrors(_ y: [Double], origins: [Int], forecasts: [[Double]]) -> [[Double]] {
        var out: [[Double]] = []
        for (e, p) in zip(origins, forecasts) {
            var row: [Double] = []
            for h in 0..<p.count { row.append(abs(y[e + 1 + h] - p[h])) }
            out.append(row)
        }
        return out
    }

    /// Coverage of the intervals each origin would get from the calibration windows ending by it.
    /// - Returns: level → coverage, level → origins refused, the windows known at each origin.
    static func rollingCoverage(
        origins: [Int], forecasts: [[Double]], truths: [[Double]], calibration: [Int], residuals: [[Double]],
        levels: [Double], horizon H: Int
    ) -> ([Double: Double], [Double: Int], [Int]) {
        var sorted: [[Double]] = Array(repeating: [], count: H)
        var used = 0
        var inside: [Double: Int] = [:]
        var judged: [Double: Int] = [:]
        var refused: [Double: Int] = [:]
        var windows: [Int] = []
        for i in 0..<origins.count {
            let e: Int = origins[i]
            while used < calibration.count && calibration[used] + H <= e {
                for h in 0..<H {
                    let r: Double = residuals[used][h]
                    var lo = 0
                    var hi = sorted[h].count
                    while lo < hi {
                        let mid = (lo + hi) / 2
                        if sorted[h][mid] < r { lo = mid + 1 } else { hi = mid }
                    }
                    sorted[h].insert(r, at: lo)
                }
                used += 1
            }
            windows.append(used)
            for level in levels {
                let k: Int = Int((Double(used + 1) * level).rounded(.up))
                if used == 0 || k > used {
                    refused[level, default: 0] += 1
                    continue
                }
                var hits = 0
                for h in 0..<H {
                    let error: Double = abs(truths[i][h] - forecasts[i][h])
                    if error <= sorted[h][k - 1] { hits += 1 }
                }
                inside[level, default: 0] += hits
                judged[level, default: 0] += H
            }
        }
        var coverage: [Double: Double] = [:]
        for (level, n) in judged where n > 0 { coverage[level] = Double(inside[level] ?? 0) / Double(n) }
        return (coverage, refused, windows)
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
            "method".padding(toLength: 16, withPad: " ", startingAt: 0)
                + "          MAE         RMSE   sMAPE %     MASE",
        ]
        for r in rows {
            lines.append(
                r.method.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(
                        format: " %12.5g %12.5g %9.3f %8.4f", r.metrics.mae, r.metrics.rmse, r.metrics.smape,
                        r.metrics.mase))
        }
        for base in ["naive", "seasonal-naive"] {
            if let (a, b) = ratios(to: base) {
                lines.append(String(format: "model / %@: MAE ratio %.3f, RMSE ratio %.3f", base, a, b))
            }
        }
        if !levels.isEmpty, let first = calibrationWindows.first, let last = calibrationWindows.last {
            for level in levels {
                if let c = coverage[level] {
                    lines.append(
                        String(
                            format:
                                "coverage of the %@%% interval: %.1f%% (nominal %@%%), calibrated at each origin on the %d to %d held-out windows ending by it",
                            levelLabel(level), 100 * c, levelLabel(level), first, last))
                }
                if let n = refusedOrigins[level] {
                    lines.append(
                        "the \(levelLabel(level))% interval was refused at \(n) origins: it needs \(ConformalIntervals.windowsNeeded(level)) calibration windows"
                    )
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
