import Datasets
import Foundation
import Model

/// A forecast combination: the mean of several members' forecasts, each a model trained with its own
/// scaling. Combinations were the M4 competition's most robust finding (Makridakis, Spiliotis and
/// Assimakopoulos, IJF 36(1) 2020): when the evidence cannot separate two scalings, averaging them
/// costs little where one is right and saves much where the choice would have been wrong.
public struct EnsembleMember {
    public let model: Seq2Seq
    /// The member's windows: the same origins for every member (the splits do not depend on the scaling),
    /// in each member's own scaling.
    public let dataset: Dataset

    public init(model: Seq2Seq, dataset: Dataset) {
        self.model = model
        self.dataset = dataset
    }
}

/// Why members cannot be combined.
public enum EnsembleError: Error, CustomStringConvertible, Equatable {
    case noMembers
    case differentWindows(first: String, other: String)

    public var description: String {
        switch self {
        case .noMembers: return "an ensemble needs at least one member"
        case .differentWindows(let a, let b):
            return
                "ensemble members \(a) and \(b) forecast from different origins or normalisers: they cannot be averaged"
        }
    }
}

extension Evaluation {
    /// The mean forecast of `members` over `split`, against the same baselines as `run`. Each member's
    /// prediction is turned back into a normalised value (its offset added) before averaging, so members
    /// with different scalings average in the same units.
    /// - Throws: `EnsembleError` when there are no members or their windows differ.
    public static func run(_ members: [EnsembleMember], split: Split = .heldOut) throws -> Evaluation {
        guard let first = members.first else { throw EnsembleError.noMembers }
        let w0 = first.dataset.windows(split)
        for m in members.dropFirst() {
            let w = m.dataset.windows(split)
            guard w.origins == w0.origins, m.dataset.normalizer == first.dataset.normalizer else {
                throw EnsembleError.differentWindows(
                    first: first.dataset.scaling.rawValue, other: m.dataset.scaling.rawValue)
            }
        }
        let h = w0.horizon
        var sum = [Double](repeating: 0, count: w0.count * h)
        for m in members {
            let w = m.dataset.windows(split)
            let b = m.model.config.batch
            var start = 0
            while start < w.count {
                let rows = min(b, w.count - start)
                w.fill(start..<(start + rows), x: m.model.x.value, y: m.model.y.value)
                m.model.forward()
                for r in 0..<rows {
                    for k in 0..<h {
                        sum[(start + r) * h + k] +=
                            Double(m.model.predictions.value[r * h + k]) + w.offsets[(start + r) * h + k]
                    }
                }
                start += rows
            }
        }
        var squares = 0.0
        for i in 0..<w0.count {
            for k in 0..<h {
                let e = sum[i * h + k] / Double(members.count) - w0.truth(i, step: k + 1)
                squares += e * e
            }
        }
        let dataset = first.dataset
        let modelMSE = dataset.unnormalisedMSE(squares / Double(max(1, w0.count * h)))
        let others = (dataset.season.map { [Baseline.seasonalNaive(period: $0)] } ?? []) + [.windowMean]
        return Evaluation(
            windows: w0.count, modelMSE: modelMSE, naiveMSE: dataset.unnormalisedMSE(w0.meanSquaredError(of: .naive)),
            baselines: others.map {
                let mse = dataset.unnormalisedMSE(w0.meanSquaredError(of: $0))
                return BaselineComparison(baseline: $0, mse: mse, ratio: errorRatio(modelMSE, over: mse))
            })
    }
}

extension ScalingChoice {
    /// The candidates ranked by their cross-validated scores: those that reached the last rung first,
    /// lowest mean over folds first. An ensemble takes its members from the front.
    public var ranked: [Scaling] {
        let last = trials.map(\.steps).max() ?? 0
        return trials.sorted {
            ($0.steps == last ? 0 : 1, $0.mean.isNaN ? .infinity : $0.mean)
                < ($1.steps == last ? 0 : 1, $1.mean.isNaN ? .infinity : $1.mean)
        }.map(\.scaling)
    }
}
