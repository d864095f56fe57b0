import Datasets
import Exchange
import Foundation
import Model
import ProcessSupport
import VariableScopes

/// Options of a training run that are not model sizes.
public struct TrainingOptions: Sendable {
    public var steps: Int
    /// Seeds batch sampling (with the task index).
    public var seed: UInt64
    /// This worker's index and the number of workers: which shard of the training windows it samples.
    public var taskIndex: Int
    public var numWorkers: Int
    /// Progress every this many steps (plain output) and events for TensorBoard.
    public var logEvery: Int
    public var logdir: String?
    /// Early stopping: stop once this many steps have passed without a lower validation MSE, and put the
    /// best variables back (this process's copy; servers keep theirs). Nil trains every step and keeps
    /// the last variables, as before the validation split existed.
    public var patience: Int?
    /// Steps between validation checks when `patience` is set.
    public var validateEvery: Int
    /// Early stopping never stops before this step, however long the validation MSE has not improved: at
    /// step 100 of 3,000 a flat stretch is noise, not convergence (issue 20 kept step 100's variables).
    public var minSteps: Int
    /// With `patience`: judge (and keep) an exponential moving average of the variables instead of the raw
    /// ones (Polyak and Juditsky, SIAM J. Control Optim. 30(4) 1992; TensorFlow's
    /// `ExponentialMovingAverage` with `num_updates`, whose decay is min(decay, (1 + t)/(10 + t))). The
    /// average moves less from batch to batch than the weights, so its validation MSE is a smoother signal.
    /// Nil judges the raw variables, as before.
    public var averageDecay: Double?
    /// With `patience`: after the best variables are back, shrink the model's correction toward its scaling's
    /// baseline by a factor fitted on the validation windows (`Shrinkage`).
    public var shrink: Bool
    /// A test hook: this step takes this many seconds longer (a slow step, as a big model's would be), so
    /// tests can show that a long step is not silence.
    public var stall: (step: Int, seconds: Double)?

    public init(
        steps: Int = 1000, seed: UInt64 = 0, taskIndex: Int = 0, numWorkers: Int = 1, logEvery: Int = 100,
        logdir: String? = nil, patience: Int? = nil, validateEvery: Int = 100, minSteps: Int = 0,
        averageDecay: Double? = nil, shrink: Bool = false, stall: (step: Int, seconds: Double)? = nil
    ) {
        self.minSteps = minSteps
        self.shrink = shrink
        self.averageDecay = averageDecay
        self.stall = stall
        self.steps = steps
        self.seed = seed
        self.taskIndex = taskIndex
        self.numWorkers = numWorkers
        self.logEvery = logEvery
        self.logdir = logdir
        self.patience = patience
        self.validateEvery = validateEvery
    }
}

/// Why training cannot start.
public enum TrainingError: Error, CustomStringConvertible {
    case emptyShard(windows: Int, workers: Int)
    case noValidation(series: String)
    /// Training left a variable holding NaN or infinity: nothing it would forecast or save is usable.
    case diverged(variable: String, loss: Float)

    public var description: String {
        switch self {
        case .emptyShard(let w, let n):
            return "\(w) training windows cannot be shared by \(n) workers: use fewer workers or more data"
        case .noValidation(let s):
            return
                "\(s) has no validation windows to choose a scaling on: raise --validation-fraction or give --scaling"
        case .diverged(let v, let loss):
            return
                "training diverged: variable \(v) holds values that are not finite (final loss \(loss)); nothing is saved: lower --learning-rate"
        }
    }
}

extension TrainingError {
    /// Throws `diverged` when a variable of `model` holds NaN or infinity after training: nothing it would
    /// forecast or save is usable. `label` prefixes the variable's name (an ensemble member's scaling).
    public static func checkFinite(_ model: Seq2Seq, loss: Float, label: String = "") throws {
        if let bad = model.variables.first(where: { !$0.value.allSatisfy(\.isFinite) }) {
            throw TrainingError.diverged(variable: label + bad.name, loss: loss)
        }
    }
}

/// What a run did.
public struct TrainingReport: Sendable {
    /// Steps run by this process.
    public let steps: Int
    public let finalLoss: Float
    public let examplesPerSecond: Double
    public let seconds: Double
    /// The step this process started from (a restarted worker's resume point).
    public var resumedAt: Int = 0
    /// With `patience`: the step whose variables were kept, and their validation MSE (series units).
    public let bestStep: Int?
    public let bestValidationMSE: Double?
    /// Whether `patience` ended the run before `steps`.
    public let stoppedEarly: Bool
    /// Where the steps' time went, summed over the steps.
    public var times = StepTimes()
    /// Whether the kept variables are the moving average's (`TrainingOptions.averageDecay`), not raw weights.
    public var averaged = false
    /// With `TrainingOptions.shrink`: the factor applied to the model's correction, and what it did.
    public var shrinkage: Shrinkage.Fit?

    /// One line on where a step's time went: computing, and exchanging with the servers (sending, and
    /// waiting for their replies) or applying the optimizer in this process.
    public var timeSummary: String {
        let n = Double(max(steps, 1))
        return String(
            format: "per step: forward %.2f ms, backward %.2f ms, exchange %.2f ms", 1000 * times.forward / n,
            1000 * times.backward / n, 1000 * times.exchange / n)
    }

    /// One line on early stopping, or nil when it was off.
    public var earlyStoppingSummary: String? {
        guard let bestStep, let bestValidationMSE else { return nil }
        return String(
            format: "validation: best MSE %.6g at step %d%@; its %@variables kept%@", bestValidationMSE, bestStep,
            stoppedEarly ? ", stopped early at step \(steps)" : "", averaged ? "averaged " : "",
            shrinkage.map {
                String(
                    format: "; the model's correction to its baseline weighted by α = %.3f (1 keeps it whole, 0 leaves the baseline; validation MSE %.6g, from %.6g)",
                    $0.alpha, $0.after, $0.before)
            } ?? "")
    }
}

/// Draws training batches uniformly, with replacement, from one worker's shard; the stream depends only
/// on the seed and the task index, so a run can be replayed in one process (the sync-equivalence test).
public struct BatchSampler {
    public let shard: [Int]
    var rng: SplitMix64

    public init(shard: [Int], seed: UInt64, taskIndex: Int) {
        precondition(!shard.isEmpty, "a worker's shard of the training windows is empty: fewer windows than workers")
        self.shard = shard
        rng = SplitMix64(seed: seed &* 1_000_003 &+ UInt64(taskIndex))
    }

    /// Fills `indices` with the next batch's window indices.
    public mutating func next(_ indices: inout [Int]) {
        for r in indices.indices { indices[r] = shard[Int(rng.next() % UInt64(shard.count))] }
    }
}

/// Trains a `Seq2Seq` on its shard of a `Dataset`: sample a batch, forward and backward, exchange
/// gradients for fresh variables, repeat; then evaluates on the held-out windows.
public final class Trainer {
    public let model: Seq2Seq
    public let dataset: Dataset
    public let options: TrainingOptions
    public let exchange: ParameterExchange
    public let shard: [Int]
    private let progress: Progress
    private let output: (String) -> Void
    private let events: EventWriter?
    /// Set (from a signal handler's queue) to stop after the current step: the worker then says it is
    /// done to its servers and reports, instead of vanishing mid-step.
    public let stop = StopFlag()
    /// Called after every step with its number and loss (metrics).
    public var onStep: ((Int, Float) -> Void)?

    public func requestStop() { stop.request() }

    var shouldStop: Bool { stop.isRequested }

    /// - Throws: when `options.logdir` cannot be created.
    public init(
        model: Seq2Seq, dataset: Dataset, options: TrainingOptions, exchange: ParameterExchange,
        output: @escaping (String) -> Void = { emitLine($0) }
    ) throws {
        self.model = model
        self.dataset = dataset
        self.options = options
        self.exchange = exchange
        shard = Datasets.shard(dataset.train.count, index: options.taskIndex, of: options.numWorkers)
        guard !shard.isEmpty else {
            throw TrainingError.emptyShard(windows: dataset.train.count, workers: options.numWorkers)
        }
        progress = Progress(total: options.steps, every: options.logEvery, output: output)
        self.output = output
        events = try options.logdir.map { try EventWriter(directory: $0, suffix: ".worker\(options.taskIndex)") }
    }

    /// Runs `options.steps` steps.
    /// - Throws: whatever the exchange throws (an unreachable server, say).
    @discardableResult
    public func train() throws -> TrainingReport {
        let variables = model.variables
        let resumed = try exchange.start(variables: variables)
        // Said at once, not only in the report: whoever restarted this worker learns where it picks up.
        // Async servers keep each task's own step; sync ones one step for the job, which a late joiner takes up.
        if resumed > 0 { output("resumed from the servers' step \(resumed) (this task's own in async mode, the job's in sync)") }
        var sampler = BatchSampler(shard: shard, seed: options.seed, taskIndex: options.taskIndex)
        let batch = model.config.batch
        var indices = [Int](repeating: 0, count: batch)
        // A restarted worker continues its task's batch stream where the servers say it stopped.
        for _ in 0..<min(resumed, options.steps) { sampler.next(&indices) }
        let started = Date()
        var loss: Float = 0
        var step = min(resumed, options.steps)
        let firstStep = step
        var times = StepTimes()
        let validating = options.patience != nil && dataset.validation.count > 0 && options.validateEvery > 0
        var best: (mse: Double, step: Int, values: [[Float]])?
        var stoppedEarly = false
        // The moving average starts from the variables as they are (fresh or restored).
        var average =
            validating ? options.averageDecay.map { d in (decay: d, values: variables.map { Array($0.value) }) } : nil
        while step < options.steps && !shouldStop {
            step += 1
            sampler.next(&indices)
            if let stall = options.stall, stall.step == step {
                output("step \(step) stalls for \(stall.seconds) s (--stall-at-step)")
                Thread.sleep(forTimeInterval: stall.seconds)
            }
            loss = try self.step(step, batch: indices, times: &times)
            let elapsed = Date().timeIntervalSince(started)
            let rate = Double((step - firstStep) * batch) / max(elapsed, 1e-9)
            progress.update(step: step, loss: loss, examplesPerSecond: rate, elapsed: elapsed)
            if let events, step % options.logEvery == 0 || step == options.steps {
                events.scalar("loss", loss, step: step)
                events.scalar("examples_per_second", Float(rate), step: step)
            }
            onStep?(step, loss)
            if let a = average {
                let d = Float(min(a.decay, Double(1 + step) / Double(10 + step)))
                for (k, v) in variables.enumerated() {
                    average!.values[k].withUnsafeMutableBufferPointer { avg in
                        for i in avg.indices { avg[i] = d * avg[i] + (1 - d) * v.value[i] }
                    }
                }
            }
            if validating, step % options.validateEvery == 0 || step == options.steps, let patience = options.patience {
                let mse: Double
                let judged: [[Float]]
                if let a = average {
                    // Evaluate the average in the model's buffers, then put the raw weights back to train on.
                    let raw = variables.map { Array($0.value) }
                    for (v, values) in zip(variables, a.values) { v.assign(values) }
                    mse = Evaluation.run(model, on: dataset, split: .validation).modelMSE
                    for (v, values) in zip(variables, raw) { v.assign(values) }
                    judged = a.values
                } else {
                    mse = Evaluation.run(model, on: dataset, split: .validation).modelMSE
                    judged = variables.map { Array($0.value) }
                }
                events?.scalar("validation_mse", Float(mse), step: step)
                if best == nil || mse < best!.mse {
                    best = (mse, step, judged)
                } else if Trainer.stopsEarly(
                    step: step, bestStep: best!.step, patience: patience, minSteps: options.minSteps)
                {
                    stoppedEarly = true
                    break
                }
            }
        }
        progress.finish()
        if let best, best.step != step || average != nil {
            for (v, values) in zip(variables, best.values) { v.assign(values) }
        }
        let seconds = Date().timeIntervalSince(started)
        try exchange.finish(variables: variables)
        var report = TrainingReport(
            steps: step - firstStep, finalLoss: loss,
            examplesPerSecond: Double((step - firstStep) * batch) / max(seconds, 1e-9), seconds: seconds,
            resumedAt: firstStep, bestStep: best?.step, bestValidationMSE: best?.mse, stoppedEarly: stoppedEarly,
            times: times)
        report.averaged = average != nil && best != nil
        if validating && options.shrink && best != nil { report.shrinkage = Shrinkage.apply(to: model, dataset: dataset) }
        return report
    }

    /// The early-stopping rule: `patience` steps without a better validation MSE, and not before `minSteps`.
    public static func stopsEarly(step: Int, bestStep: Int, patience: Int, minSteps: Int) -> Bool {
        step - bestStep >= patience && step >= minSteps
    }

    /// One training step on the training windows `indices`: fill the batch, forward, backward, then hand
    /// the gradients to the exchange (which leaves fresh variables). Adds the time of each part to `times`.
    /// - Returns: the batch's loss.
    public func step(_ step: Int, batch indices: [Int], times: inout StepTimes) throws -> Float {
        let clock = ContinuousClock()
        dataset.train.fill(indices, x: model.x.value, y: model.y.value)
        let t0 = clock.now
        model.tape.forward()
        let t1 = clock.now
        model.tape.backward(from: model.loss)
        let t2 = clock.now
        try exchange.exchange(step: step, variables: model.variables)
        let t3 = clock.now
        times.forward += (t1 - t0).seconds
        times.backward += (t2 - t1).seconds
        times.exchange += (t3 - t2).seconds
        return model.loss.value[0]
    }

    /// The held-out MSE of the current variables, next to the baselines'; the ratios go to TensorBoard too.
    public func evaluate() -> Evaluation {
        let evaluation = Trainer.evaluate(model, on: dataset)
        events?.scalar("heldout_mse", Float(evaluation.modelMSE), step: options.steps)
        for (tag, ratio) in evaluation.ratioTags {
            events?.scalar("heldout_ratio_to_\(tag)", Float(ratio), step: options.steps)
        }
        events?.flush()
        return evaluation
    }

    /// Writes the scaling trials' cross-validated scores to TensorBoard (`selection/cv_ratio_relative`, the
    /// mean over folds of MSE over naive's, and `selection/cv_ratio_relative_fold1` ...).
    public func record(_ choice: ScalingChoice) {
        for trial in choice.trials {
            events?.scalar("selection/cv_ratio_\(trial.scaling.rawValue)", Float(trial.mean), step: 0)
            for (k, r) in trial.foldRatios.enumerated() {
                events?.scalar("selection/cv_ratio_\(trial.scaling.rawValue)_fold\(k + 1)", Float(r), step: 0)
            }
        }
    }

    /// Runs `model` forward over every held-out window (the last batch padded) and compares.
    public static func evaluate(_ model: Seq2Seq, on dataset: Dataset) -> Evaluation {
        Evaluation.run(model, on: dataset, split: .heldOut)
    }
}

/// Where a step's time went.
public struct StepTimes: Sendable {
    public var forward = 0.0
    public var backward = 0.0
    public var exchange = 0.0
    public init() {}
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// Early stopping's defaults, in proportion to the run: a fixed patience of 1,000 steps let a 3,000-step
/// run stop at step 1,100 keeping step 100's variables (issue 20), and would never stop a 100,000-step one.
public enum EarlyStoppingDefaults {
    /// Steps without a better validation MSE before stopping: a quarter of the run, at least one check's worth.
    public static func patience(steps: Int, validateEvery: Int = 100) -> Int { max(validateEvery, steps / 4) }
    /// The run is not stopped before half of it.
    public static func minSteps(steps: Int) -> Int { steps / 2 }
    /// The moving average's decay: about the last 100 steps count.
    public static let averageDecay = 0.99
}
