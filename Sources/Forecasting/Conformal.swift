import Foundation

/// Split-conformal prediction intervals (Vovk, Gammerman and Shafer 2005; Lei et al., "Distribution-free
/// predictive inference for regression", JASA 2018), one per horizon step: the absolute residuals of the model
/// on calibration windows that training used neither to fit nor to choose, and for level 1 − α the
/// ⌈(n + 1)(1 − α)⌉-th smallest of the n residuals as the interval's half-width. With exchangeable errors
/// the interval covers at least 1 − α of new values; a time series' errors are only roughly so, hence the
/// backtest's empirical coverage.
public struct ConformalIntervals: Sendable {
    /// Levels as fractions (0.8, 0.95) → a half-width per horizon step.
    public let halfWidths: [Double: [Double]]
    /// Calibration windows used.
    public let windows: Int
    /// Levels asked for that the calibration part cannot give (too few windows), with the count needed.
    public let refused: [(level: Double, needed: Int)]

    /// - Parameters:
    ///   - residuals: [window][step] absolute errors on the calibration part, in series units.
    ///   - levels: fractions in (0, 1).
    public init(residuals: [[Double]], horizon: Int, levels: [Double]) {
        let n = residuals.count
        var widths: [Double: [Double]] = [:]
        var refused: [(Double, Int)] = []
        for level in levels {
            let k = Int((Double(n + 1) * level).rounded(.up))
            guard n > 0, k <= n else {
                refused.append((level, Self.windowsNeeded(level)))
                continue
            }
            widths[level] = (0..<horizon).map { h in
                let sorted = residuals.map { $0[h] }.sorted()
                return sorted[k - 1]
            }
        }
        halfWidths = widths
        windows = n
        self.refused = refused
    }

    /// The fewest calibration windows that give `level`: the smallest n with ⌈(n + 1) level⌉ ≤ n.
    /// ⌈(n + 1) level⌉ ≤ n holds from about level / (1 − level) on: start a little below that and step up,
    /// so a level of 99.9999% costs a few steps, not a million. Levels are in (0, 1); past 10¹⁵ windows
    /// (levels within 10⁻¹⁵ of 1) the answer is only "more than anyone has", and is capped there.
    public static func windowsNeeded(_ level: Double) -> Int {
        let cap = 1_000_000_000_000_000
        guard level > 0, level < 1 else { return level >= 1 ? cap : 1 }
        let estimate = level / (1 - level)
        guard estimate < Double(cap) else { return cap }
        var n = max(1, Int(estimate) - 2)
        while n < cap && Int((Double(n + 1) * level).rounded(.up)) > n { n += 1 }
        return n
    }
}

/// Formats a level fraction as the column suffix: 0.8 → "80", 0.975 → "97.5".
public func levelLabel(_ level: Double) -> String {
    let pct = level * 100
    return pct == pct.rounded() ? String(Int(pct)) : String(format: "%g", pct)
}
