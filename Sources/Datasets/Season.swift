/// Finds the period of a series' repeating pattern from its autocorrelation, so that the seasonal-naive
/// baseline and seasonal differencing need no flag on the usual data (52 for weekly CO2, 11 for yearly
/// sunspots).
public enum SeasonDetection {
    /// The period of the strongest repeating pattern in `values`, or nil when there is none.
    ///
    /// The series is detrended by a least-squares line (a trend would make every lag look alike), then
    /// the sample autocorrelation (biased estimator, as Box and Jenkins define it) is computed for lags
    /// 2 ... `values.count / 3`. Among its local maxima of at least `threshold`, the shortest lag whose
    /// value is at least `fundamental` times the highest is the period: multiples of a period peak
    /// almost as high, and the fundamental is the one to repeat.
    /// - Parameters:
    ///   - all: the training part of the target column, oldest first.
    ///   - maxPoints: how many of its last values are read.
    ///   - threshold: the least autocorrelation that counts as a pattern (0.2 leaves AR(1) noise out).
    ///   - fundamental: how close to the highest peak a shorter lag must come to be preferred.
    /// At most the last `maxPoints` values are used, so lags up to `maxPoints / 3` (10,000) are found and the
    /// cost stays bounded (about 2.5·10⁸ multiply-adds) on a series of any length; a longer season needs
    /// `--season`.
    public static func period(
        of all: [Double], threshold: Double = 0.2, fundamental: Double = 0.8, maxPoints: Int = 30_000
    ) -> Int? {
        let values = Array(all.suffix(max(0, maxPoints)))
        let n = values.count
        let maxLag = n / 3
        guard maxLag >= 3 else { return nil }
        let x = detrended(values)
        let variance = x.reduce(0) { $0 + $1 * $1 }
        guard variance > 0 else { return nil }
        let acf = (0...(maxLag + 1)).map { lag -> Double in
            var s = 0.0
            for t in 0..<(n - lag) { s += x[t] * x[t + lag] }
            return s / variance
        }
        let peaks = (2...maxLag).filter { acf[$0] > acf[$0 - 1] && acf[$0] >= acf[$0 + 1] && acf[$0] >= threshold }
        guard let top = peaks.map({ acf[$0] }).max() else { return nil }
        return peaks.first { acf[$0] >= fundamental * top }
    }

    /// `values` minus their least-squares line.
    static func detrended(_ values: [Double]) -> [Double] {
        let n = Double(values.count)
        let tMean = (n - 1) / 2
        let vMean = values.reduce(0, +) / n
        var num = 0.0
        var den = 0.0
        for (t, v) in values.enumerated() {
            num += (Double(t) - tMean) * (v - vMean)
            den += (Double(t) - tMean) * (Double(t) - tMean)
        }
        let slope = den > 0 ? num / den : 0
        return values.enumerated().map { $1 - vMean - slope * (Double($0) - tMean) }
    }
}
