import Datasets
import Model
import VariableScopes

/// Shrinks what the model learnt toward what its scaling forecasts when it has learnt nothing: naive under
/// `relative`, seasonal-naive under `seasonalDifference`, and so on. The forecast becomes
/// baseline + α × the model's correction, with α in [0, 1] fitted by least squares on the validation windows
/// (never trained on). On a random walk the correction is noise and α goes toward 0, so the model does no
/// harm; where the model has learnt something real, α stays near 1. One number, bounded, fitted on the
/// part that already chooses when to stop: the classical shrinkage of a forecast combination's weight.
///
/// The model's output is the last dense layer without a bias (`weights_target`, not fed back into the
/// decoder: input feeding passes the attentional state, not the forecast), so α × output is exactly the
/// model with `weights_target` times α. Applying it to the variables makes every consumer (model files,
/// `forecast`, serving, ONNX export) forecast the shrunk model with nothing more to carry.
public enum Shrinkage {
    /// What fitting found.
    public struct Fit: Sendable, Equatable {
        /// The weight of the model's correction, in [0, 1].
        public let alpha: Double
        /// Validation MSE (series units) before and after.
        public let before: Double
        public let after: Double
        /// Validation windows fitted on.
        public let windows: Int
    }

    /// The least-squares α for `model`'s outputs `p` (the correction, in the model's units) against the
    /// targets `y` (what the baseline misses): Σ p·y / Σ p², clamped to [0, 1]; 1 when the model outputs
    /// nothing or the sums are not finite.
    public static func alpha(outputs p: [Double], targets y: [Double]) -> Double {
        var py = 0.0
        var pp = 0.0
        for (a, b) in zip(p, y) {
            py += a * b
            pp += a * a
        }
        guard pp > 0, py.isFinite, pp.isFinite else { return 1 }
        return min(1, max(0, py / pp))
    }

    /// The variables whose values scale the model's output: every `weights_target` (one per step under the
    /// seed's `tf.Variable` form, `weights_target_1` ...), or their partitions.
    public static func outputVariables(_ model: Seq2Seq) -> [Variable] {
        model.variables.filter { v in
            let parts = v.name.split(separator: "/")
            guard let last = parts.last else { return false }
            let leaf = last.hasPrefix("part_") && parts.count > 1 ? parts[parts.count - 2] : last
            return leaf == "weights_target" || leaf.hasPrefix("weights_target_")
        }
    }

    /// Fits α on `dataset`'s validation windows and scales the model's output by it.
    /// - Returns: nil when there are no validation windows.
    @discardableResult
    public static func apply(to model: Seq2Seq, dataset: Dataset) -> Fit? {
        let w = dataset.validation
        guard w.count > 0 else { return nil }
        var outputs: [Double] = []
        outputs.reserveCapacity(w.count * w.horizon)
        let b = model.config.batch
        var start = 0
        while start < w.count {
            let rows = min(b, w.count - start)
            w.fill(start..<(start + rows), x: model.x.value, y: model.y.value)
            model.forward()
            for k in 0..<(rows * w.horizon) { outputs.append(Double(model.predictions.value[k])) }
            start += rows
        }
        let targets = w.targets.map(Double.init)
        let alpha = self.alpha(outputs: outputs, targets: targets)
        // Before: from the outputs just computed; after: the shrunk model run again, as it will forecast.
        let squares = zip(outputs, targets).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let before = dataset.unnormalisedMSE(squares / Double(outputs.count))
        for v in outputVariables(model) {
            v.assign(v.value.map { Float(Double($0) * alpha) })
        }
        let after = Evaluation.run(model, on: dataset, split: .validation).modelMSE
        return Fit(alpha: alpha, before: before, after: after, windows: w.count)
    }
}
