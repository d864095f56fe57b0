/// How series values become model inputs.
public enum Scaling: String, Sendable, CaseIterable, Codable {
    /// Per-window level removal (the default): inputs and targets relative to the window's last observed
    /// value, after global normalisation; predictions are shifted back. Keeps a trending series such as
    /// CO2 inside the range the model trained on.
    case relative
    /// Global normalisation only (mean and standard deviation of the training split).
    case global
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
        self.std = sq.map { max(($0 / Double(count)).squareRoot(), 1e-12) }
    }
}

/// A set of windows: T inputs of D features, the next H values of the target as labels, and each
/// window's level (the last observed target value, subtracted under `.relative`, 0 under `.global`).
public struct Windows: Sendable {
    public let window: Int
    public let horizon: Int
    public let dimension: Int
    /// [count, T, D] row-major.
    public let inputs: [Float]
    /// [count, H].
    public let targets: [Float]
    /// [count]: the last observed target value in normalised units (the naive forecast).
    public let levels: [Float]

    public var count: Int { levels.count }

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

/// A series cut into training and held-out windows, chronologically: the first `trainFraction` of the
/// series trains (and fits the normaliser); windows whose targets fall in the rest are held out.
public struct Dataset: Sendable {
    public let series: String
    public let normalizer: Normalizer
    public let scaling: Scaling
    public let train: Windows
    public let heldOut: Windows

    /// - Throws: `DataError.tooShort` when the series cannot give a window in each split.
    public init(_ series: Series, window: Int, horizon: Int, scaling: Scaling = .relative, trainFraction: Double = 0.8)
        throws
    {
        let n = series.count
        let cut = Int(Double(n) * trainFraction)
        guard cut >= window + horizon, n - cut >= horizon else {
            throw DataError.tooShort(
                name: series.name, length: n,
                needed: Int(Double(window + 2 * horizon) / min(trainFraction, 1 - trainFraction)) + 1)
        }
        let normalizer = Normalizer(fitting: series.values, count: cut)
        let z = series.values.map { row in row.indices.map { (row[$0] - normalizer.mean[$0]) / normalizer.std[$0] } }
        self.series = series.name
        self.normalizer = normalizer
        self.scaling = scaling
        train = Dataset.windows(z, from: 0, to: cut, window: window, horizon: horizon, scaling: scaling)
        heldOut = Dataset.windows(z, from: cut - window, to: n, window: window, horizon: horizon, scaling: scaling)
    }

    /// Windows whose inputs start at i ≥ `from` and whose targets end at or before `to`.
    static func windows(_ z: [[Double]], from: Int, to: Int, window T: Int, horizon H: Int, scaling: Scaling) -> Windows
    {
        let d = z[0].count
        var xs: [Float] = []
        var ys: [Float] = []
        var levels: [Float] = []
        var i = from
        while i + T + H <= to {
            let last = z[i + T - 1]
            let shift = scaling == .relative ? last : [Double](repeating: 0, count: d)
            for t in 0..<T { for k in 0..<d { xs.append(Float(z[i + t][k] - shift[k])) } }
            for h in 0..<H { ys.append(Float(z[i + T + h][0] - shift[0])) }
            levels.append(Float(last[0] - shift[0]))
            i += 1
        }
        return Windows(window: T, horizon: H, dimension: d, inputs: xs, targets: ys, levels: levels)
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
