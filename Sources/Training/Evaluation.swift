import Datasets
import Foundation
import Model

/// A forecast error next to a baseline's on the same windows.
public struct BaselineComparison: Sendable, Equatable {
    public let baseline: Baseline
    /// The baseline's MSE in the series' own units.
    public let mse: Double
    /// The model's MSE over the baseline's: below 1, the model beats it.
    public let ratio: Double
}

/// Quality on one split: the model's MSE next to the naive forecast that repeats the last observed
/// value, and next to the other baselines (seasonal-naive when a season is known, the window's mean),
/// all in the series' own units.
public struct Evaluation: Sendable, CustomStringConvertible {
    public let windows: Int
    public let modelMSE: Double
    public let naiveMSE: Double
    /// Every baseline but naive, in the order printed.
    public let baselines: [BaselineComparison]
    public var ratio: Double { errorRatio(modelMSE, over: naiveMSE) }

    /// The first line is parsed by tests and scripts (`ratio X`): its format stays; the other baselines
    /// follow on lines of their own.
    public var description: String {
        ([
            String(
                format: "held-out MSE %.6g vs naive forecast %.6g: ratio %.3f over %d windows", modelMSE, naiveMSE,
                ratio, windows)
        ]
            + baselines.map {
                String(format: "held-out vs %@ forecast %.6g: ratio %.3f", "\($0.baseline)", $0.mse, $0.ratio)
            })
            .joined(separator: "\n")
    }

    /// The ratio to `baseline`'s MSE, under a TensorBoard-friendly tag (`heldout_ratio_to_seasonal_naive`).
    public var ratioTags: [(tag: String, ratio: Double)] {
        [("naive", ratio)] + baselines.map { (Evaluation.tag($0.baseline), $0.ratio) }
    }

    static func tag(_ baseline: Baseline) -> String {
        switch baseline {
        case .naive: return "naive"
        case .seasonalNaive: return "seasonal_naive"
        case .windowMean: return "window_mean"
        }
    }

    /// Runs `model` forward over every window of `split` (the last batch padded) and compares it with the
    /// baselines; errors are taken on normalised values, so every scaling is judged on the same footing.
    public static func run(_ model: Seq2Seq, on dataset: Dataset, split: Split = .heldOut) -> Evaluation {
        let w = dataset.windows(split)
        let b = model.config.batch
        let h = w.horizon
        var modelSum = 0.0
        var start = 0
        while start < w.count {
            let rows = min(b, w.count - start)
            w.fill(start..<(start + rows), x: model.x.value, y: model.y.value)
            model.forward()
            for r in 0..<rows {
                let i = start + r
                for k in 0..<h {
                    let p = Double(model.predictions.value[r * h + k]) + w.offsets[i * h + k]
                    let e = p - w.truth(i, step: k + 1)
                    modelSum += e * e
                }
            }
            start += rows
        }
        let modelMSE = dataset.unnormalisedMSE(modelSum / Double(max(1, w.count * h)))
        let others = (dataset.season.map { [Baseline.seasonalNaive(period: $0)] } ?? []) + [.windowMean]
        return Evaluation(
            windows: w.count, modelMSE: modelMSE,
            naiveMSE: dataset.unnormalisedMSE(w.meanSquaredError(of: .naive)),
            baselines: others.map {
                let mse = dataset.unnormalisedMSE(w.meanSquaredError(of: $0))
                return BaselineComparison(baseline: $0, mse: mse, ratio: errorRatio(modelMSE, over: mse))
            })
    }
}
