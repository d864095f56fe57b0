/// How series values become model inputs.
public enum Scaling: String, Sendable, CaseIterable, Codable {
    /// Per-window level removal (the default): inputs and targets relative to the window's last observed
    /// value, after global normalisation; predictions are shifted back. Keeps a trending series such as
    /// CO2 inside the range the model trained on.
    case relative
    /// Global normalisation only (mean and standard deviation of the training split). Keeps the level,
    /// which a stationary series' forecast reverts to.
    case global
    /// `relative` on the seasonal difference (value minus the value one period earlier): the model
    /// forecasts how this season departs from the last, so a window shorter than the period (24 weeks of
    /// a yearly cycle) still carries the season. Needs a period (`Dataset.season`).
    case seasonal
    /// The seasonal difference itself, not relative to the window's last: inputs are each value minus the
    /// value one period earlier, targets the departure from the seasonal-naive forecast (the value one
    /// period, or as many as the step needs, before the target). A model that has learnt nothing forecasts
    /// seasonal-naive, the baseline that short seasonal series are hard to beat with; one that has learnt
    /// forecasts how this year departs from last year's. Needs a period.
    case seasonalDifference = "seasonal-difference"

    /// Whether the scaling differences over a seasonal period (and so needs one).
    public var needsSeason: Bool { self == .seasonal || self == .seasonalDifference }
}

/// Mean and standard deviation per column, from the training split only; saved with the model.
public struct Normalizer: Codable, Sendable, Equatable {
    public let mean: [Double]
    public let std: [Double]

    public init(mean: [Double], std: [Double]) {
        self.mean = mean
        self.std = std
    }

    /// Fits on `values[0 ..< count]` (population standard deviation, as numpy's default).
    public init(fitting values: [[Double]], count: Int) {
        let d = values[0].count
        var mean = [Double](repeating: 0, count: d)
        var sq = [Double](repeating: 0, count: d)
        for t in 0..<count { for k in 0..<d { mean[k] += values[t][k] } }
        for k in 0..<d { mean[k] /= Double(count) }
        for t in 0..<count { for k in 0..<d { sq[k] += (values[t][k] - mean[k]) * (values[t][k] - mean[k]) } }
        self.mean = mean
        // A spread that is rounding next to the mean (a column of 0.1s gives 1.4e-17) is a constant column and
        // keeps the 1e-12 floor, so nothing divides by zero; a real spread below 1e-12 (a series in units of
        // 1e-30) is kept, down to 1e-30, where float32 still holds the values: an absolute 1e-12 floor flattened
        // such a series to nothing the model could learn.
        self.std = zip(sq, mean).map { sum, m in
            let s = (sum / Double(count)).squareRoot()
            guard s.isFinite else { return 1e-12 }
            return s > 1e-12 * abs(m) ? max(s, 1e-30) : max(s, 1e-12)
        }
    }
}

/// A set of windows: T inputs of D features and the next H values of the target as labels, in the
/// model's units, with what turns a model output back into a normalised value.
public struct Windows: Sendable {
    public let window: Int
    public let horizon: Int
    public let dimension: Int
    /// [count, T, D] row-major.
    public let inputs: [Float]
    /// [count, H].
    public let targets: [Float]
    /// [count, H]: added to a target (or a prediction) gives the normalised value: 0 under `.global`,
    /// the last observed value under `.relative`, that plus the change a season earlier under `.seasonal`,
    /// the seasonal-naive forecast under `.seasonalDifference`.
    public let offsets: [Double]
    /// [count]: the index in the series of each window's last observed value; its targets follow it.
    public let origins: [Int]
    /// The whole normalised target column, for baselines and errors in normalised units.
    public let history: [Double]

    public var count: Int { origins.count }

    /// The normalised value window `i` forecasts at `step` (1 ... H).
    public func truth(_ i: Int, step: Int) -> Double { history[origins[i] + step] }

    /// Mean squared error of `baseline` over these windows and every step, in normalised units.
    public func meanSquaredError(of baseline: Baseline) -> Double {
        var sum = 0.0
        for i in 0..<count {
            for k in 1...horizon {
                let e = baseline.forecast(history, origin: origins[i], window: window, step: k) - truth(i, step: k)
                sum += e * e
            }
        }
        return sum / Double(max(1, count * horizon))
    }

    /// Copies windows `indices` into batch buffers x [B, T, D] and y [B, H]; rows past `indices` are zeros.
    public func fill(
        _ indices: some Collection<Int>, x: UnsafeMutableBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>
    ) {
        let xw = window * dimension
        var rows = 0
        for (row, i) in indices.enumerated() {
            for k in 0..<xw { x[row * xw + k] = inputs[i * xw + k] }
            for k in 0..<horizon { y[row * horizon + k] = targets[i * horizon + k] }
            rows = row + 1
        }
        // Only a short last batch has rows to clear.
        if rows * xw < x.count { UnsafeMutableBufferPointer(rebasing: x[(rows * xw)...]).update(repeating: 0) }
        if rows * horizon < y.count {
            UnsafeMutableBufferPointer(rebasing: y[(rows * horizon)...]).update(repeating: 0)
        }
    }
}

/// The three chronological parts of a `Dataset`.
public enum Split: String, Sendable, CaseIterable {
    case train
    case validation
    case heldOut = "held-out"
}

/// A series cut chronologically into three parts: training windows, validation windows (the last
/// `validationFraction` of the training split, never trained on, for choosing the scaling and when to
/// stop) and held-out windows (the rest of the series, untouched until the final report). Windows of
/// the later parts take their inputs from before their cut, as a forecaster would.
public struct Dataset: Sendable {
    public let series: String
    /// Fitted on the part trained on only.
    public let normalizer: Normalizer
    public let scaling: Scaling
    /// The seasonal period: the seasonal-naive baseline's, and `.seasonal` scaling's difference lag.
    public let season: Int?
    public let train: Windows
    public let validation: Windows
    public let heldOut: Windows

    /// - Parameters:
    ///   - scaling: `.seasonal` needs `season`.
    ///   - season: the seasonal period, given or from `SeasonDetection`; nil leaves seasonal-naive out.
    ///   - trainFraction: the chronological share of the series before the held-out part.
    ///   - validationFraction: the share of that training split, at its end, kept for validation; 0 for none.
    /// - Throws: `DataError.tooShort` when a split would have no window, `DataError.seasonNeeded` for
    ///   `.seasonal` without a season.
    public init(
        _ series: Series, window: Int, horizon: Int, scaling: Scaling = .relative, season: Int? = nil,
        trainFraction: Double = 0.8, validationFraction: Double = 0.1
    ) throws {
        // Where a series of n rows is cut: the held-out part starts at `cut`, validation at `fitCut`.
        let cuts = { (n: Int) -> (cut: Int, fitCut: Int) in
            let cut = Int(Double(n) * trainFraction)
            return (cut, cut - Int(Double(cut) * validationFraction))
        }
        let n = series.count
        let (cut, fitCut) = cuts(n)
        let lag = scaling.needsSeason ? season ?? 0 : 0
        if scaling.needsSeason && lag < 1 { throw DataError.seasonNeeded(name: series.name) }
        // The first window whose inputs and offsets only reach back to the series' start.
        let first = lag == 0 ? 0 : max(lag, (horizon + lag - 1) / lag * lag - window + 1)
        let fits = { (n: Int) -> Bool in
            let (cut, fitCut) = cuts(n)
            return fitCut - first >= window + horizon && n - cut >= horizon
                && (validationFraction == 0 || cut - fitCut >= horizon)
        }
        guard fits(n) else {
            // The fewest rows that fit: a longer series never fits less, so double until one fits, then bisect.
            var (lo, hi) = (n, max(n + 1, 2))
            while !fits(hi) && hi < 1 << 40 { (lo, hi) = (hi, hi * 2) }
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2
                if fits(mid) { hi = mid } else { lo = mid }
            }
            throw DataError.tooShort(name: series.name, length: n, needed: hi, season: lag == 0 ? nil : lag)
        }
        let normalizer = Normalizer(fitting: series.values, count: fitCut)
        let z = series.values.map { row in row.indices.map { (row[$0] - normalizer.mean[$0]) / normalizer.std[$0] } }
        self.series = series.name
        self.normalizer = normalizer
        self.scaling = scaling
        self.season = season
        let make = { (from: Int, to: Int) in
            Dataset.windows(z, from: from, to: to, window: window, horizon: horizon, scaling: scaling, lag: lag)
        }
        train = make(first, fitCut)
        validation = make(max(first, fitCut - window), validationFraction == 0 ? fitCut - window : cut)
        heldOut = make(max(first, cut - window), n)
    }

    /// Windows whose inputs start at i ≥ `from` and whose targets end at or before `to`.
    static func windows(
        _ z: [[Double]], from: Int, to: Int, window T: Int, horizon H: Int, scaling: Scaling, lag P: Int
    ) -> Windows {
        let d = z[0].count
        let history = z.map { $0[0] }
        var xs: [Float] = []
        var ys: [Float] = []
        var offsets: [Double] = []
        var origins: [Int] = []
        var i = from
        while i + T + H <= to {
            let e = i + T - 1
            // Inputs: plain, relative to the last value, or the seasonal difference relative to its last value.
            let input = { (t: Int, k: Int) -> Double in
                switch scaling {
                case .global: return z[t][k]
                case .relative: return z[t][k] - z[e][k]
                case .seasonal: return (z[t][k] - z[t - P][k]) - (z[e][k] - z[e - P][k])
                case .seasonalDifference: return z[t][k] - z[t - P][k]
                }
            }
            for t in i...e { for k in 0..<d { xs.append(Float(input(t, k))) } }
            for h in 1...H {
                let offset: Double
                switch scaling {
                case .global: offset = 0
                case .relative: offset = history[e]
                case .seasonal:
                    let back = Baseline.back(step: h, period: P)
                    offset = history[e] + history[e + h - back] - history[e - back]
                case .seasonalDifference:
                    offset = history[e + h - Baseline.back(step: h, period: P)]
                }
                offsets.append(offset)
                ys.append(Float(history[e + h] - offset))
            }
            origins.append(e)
            i += 1
        }
        return Windows(
            window: T, horizon: H, dimension: d, inputs: xs, targets: ys, offsets: offsets, origins: origins,
            history: history)
    }

    /// The windows of `split`.
    public func windows(_ split: Split) -> Windows {
        switch split {
        case .train: return train
        case .validation: return validation
        case .heldOut: return heldOut
        }
    }

    /// Mean squared error in the series' own units: normalised errors times the target's variance.
    public func unnormalisedMSE(_ normalisedMSE: Double) -> Double {
        normalisedMSE * normalizer.std[0] * normalizer.std[0]
    }
}

/// Sharding of training windows among workers by index: worker `index` of `count` takes windows
/// i with i % count == index. Shards are disjoint and together cover every window.
public func shard(_ total: Int, index: Int, of count: Int) -> [Int] {
    precondition(count > 0 && (0..<count).contains(index), "shard \(index) of \(count)")
    return Array(stride(from: index, to: total, by: count))
}
