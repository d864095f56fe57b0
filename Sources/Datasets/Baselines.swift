/// An error over a baseline's error. A baseline that is exact (a constant series under naive) has nothing to
/// divide by: a model exact too is level with it (1), any error at all is infinitely worse. 0/0 would print
/// as "-nan" and poison every mean and log it enters.
public func errorRatio(_ error: Double, over baseline: Double) -> Double {
    baseline > 0 ? error / baseline : (error > 0 ? .infinity : (error == 0 ? 1 : .nan))
}

/// Forecasts that need no training, to judge a model against: a model that cannot beat repeating the
/// last season has learnt nothing a lookup would not give.
public enum Baseline: Sendable, Equatable, CustomStringConvertible {
    /// Repeat the last observed value.
    case naive
    /// Repeat the last season: step k ahead takes the value one period earlier, or several periods when
    /// k exceeds the period (Hyndman and Athanasopoulos, "Forecasting: Principles and Practice", 5.2).
    case seasonalNaive(period: Int)
    /// The mean of the window's observed values.
    case windowMean

    public var description: String {
        switch self {
        case .naive: return "naive"
        case .seasonalNaive(let p): return "seasonal-naive (period \(p))"
        case .windowMean: return "window mean"
        }
    }

    /// How far back from the target seasonal-naive looks for step `step` ahead: the fewest whole periods that
    /// reach behind the origin (one period for steps up to the period, two up to twice it, ...). The seasonal
    /// scalings take their offsets from the same rows.
    public static func back(step: Int, period: Int) -> Int { (step + period - 1) / period * period }

    /// The forecast of `history[origin + step]` made at `origin`, from `history[...origin]` only.
    /// - Parameters:
    ///   - history: the target column, oldest first.
    ///   - origin: the index of the last observed value.
    ///   - window: how many values the window observes (for `.windowMean`).
    ///   - step: how far ahead, from 1.
    /// A seasonal-naive forecast whose season starts before the series does falls back to naive.
    public func forecast(_ history: [Double], origin: Int, window: Int, step: Int) -> Double {
        switch self {
        case .naive:
            return history[origin]
        case .seasonalNaive(let period):
            let i = origin + step - Baseline.back(step: step, period: period)
            return i >= 0 ? history[i] : history[origin]
        case .windowMean:
            let first = max(0, origin - window + 1)
            return history[first...origin].reduce(0, +) / Double(origin - first + 1)
        }
    }
}
