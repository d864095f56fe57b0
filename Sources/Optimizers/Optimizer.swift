import CKernels
import Foundation

/// The update rules, shared by in-process training and the parameter server, so that one process and
/// a cluster in sync mode compute exactly the same thing. Rules and defaults are TensorFlow's.
public struct OptimizerConfig: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// var -= lr · g
        case sgd
        /// accum = momentum · accum + g; var -= lr · accum (`tf.train.MomentumOptimizer`)
        case momentum
        /// Kingma & Ba 2015, as `tf.train.AdamOptimizer` (bias correction folded into the step size).
        case adam
    }

    public var kind: Kind
    public var learningRate: Float
    public var momentum: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float

    public init(
        kind: Kind = .adam, learningRate: Float = 1e-3, momentum: Float = 0.9, beta1: Float = 0.9,
        beta2: Float = 0.999, epsilon: Float = 1e-8
    ) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    public var description: String {
        switch kind {
        case .sgd: return "sgd(lr \(learningRate))"
        case .momentum: return "momentum(lr \(learningRate), momentum \(momentum))"
        case .adam: return "adam(lr \(learningRate), beta1 \(beta1), beta2 \(beta2), epsilon \(epsilon))"
        }
    }
}

/// One variable's optimizer slots (TF's `m`, `v`, `momentum` accumulators) and its update count.
public final class OptimizerSlots {
    public var first: [Float]
    public var second: [Float]
    public private(set) var step: Int = 0

    public init(count: Int) {
        first = [Float](repeating: 0, count: count)
        second = [Float](repeating: 0, count: count)
    }

    /// Restores slots saved in a checkpoint.
    public init(first: [Float], second: [Float], step: Int) {
        self.first = first
        self.second = second
        self.step = step
    }

    /// Applies one update to `value` from `gradient` under `config`.
    public func apply(
        _ config: OptimizerConfig, value: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>
    ) {
        precondition(value.count == gradient.count && value.count == first.count, "optimizer slot size mismatch")
        step += 1
        let t = step
        first.withUnsafeMutableBufferPointer { m in
            second.withUnsafeMutableBufferPointer { v in
                OptimizerSlots.update(config, step: t, value: value, first: m, second: v, gradient: gradient)
            }
        }
    }

    /// One update of `value` and its slots in place, as step `step` (1 for the first).
    public static func update(
        _ config: OptimizerConfig, step: Int, value: UnsafeMutableBufferPointer<Float>,
        first: UnsafeMutableBufferPointer<Float>, second: UnsafeMutableBufferPointer<Float>,
        gradient: UnsafeBufferPointer<Float>
    ) {
        _ = update(
            config, step: step, value: UnsafeBufferPointer(value), first: UnsafeBufferPointer(first),
            second: UnsafeBufferPointer(second), gradient: gradient, scale: 1, valueOut: value, firstOut: first,
            secondOut: second)
    }

    /// One update as step `step`, out of place: reads the state and `gradient` × `scale`, writes the new state
    /// to the outputs (which may be the inputs themselves). Slots the rule does not use (both for sgd, the
    /// second for momentum) are neither read nor written.
    ///
    /// The parameter server stages updates this way and keeps one only when every value and slot it wrote
    /// is finite, which the result tells: one pass, no copies, no second scan.
    /// - Returns: whether every output written is finite.
    public static func update(
        _ config: OptimizerConfig, step: Int, value: UnsafeBufferPointer<Float>, first: UnsafeBufferPointer<Float>,
        second: UnsafeBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>, scale: Float,
        valueOut: UnsafeMutableBufferPointer<Float>, firstOut: UnsafeMutableBufferPointer<Float>,
        secondOut: UnsafeMutableBufferPointer<Float>
    ) -> Bool {
        let n = value.count
        precondition(gradient.count == n && valueOut.count == n, "optimizer buffer size mismatch")
        let kind: Int32
        var rate = config.learningRate
        var p1: Float = 0
        switch config.kind {
        case .sgd:
            kind = 0
        case .momentum:
            precondition(first.count == n && firstOut.count == n, "optimizer slot size mismatch")
            kind = 1
            p1 = config.momentum
        case .adam:
            precondition(
                first.count == n && firstOut.count == n && second.count == n && secondOut.count == n,
                "optimizer slot size mismatch")
            kind = 2
            p1 = config.beta1
            // Bias correction folded into the step size, as TensorFlow does.
            let t = Double(step)
            rate = Float(
                Double(config.learningRate) * (1 - pow(Double(config.beta2), t)).squareRoot()
                    / (1 - pow(Double(config.beta1), t)))
        }
        guard n > 0 else { return true }
        // A large variable is split over the cores: the update is elementwise and memory-bound, and a server
        // applying a 59 MB model's push has nothing else to do meanwhile (nor has its worker, waiting).
        let pieces = min(parallelism, n / parallelGrain)
        if pieces <= 1 {
            return ck_optimizer_update(
                kind, n, rate, p1, config.beta2, config.epsilon, scale, value.baseAddress, first.baseAddress,
                second.baseAddress, gradient.baseAddress, valueOut.baseAddress, firstOut.baseAddress,
                secondOut.baseAddress) != 0
        }
        let finite = UnsafeMutableBufferPointer<Bool>.allocate(capacity: pieces)
        defer { finite.deallocate() }
        // Whole cache lines per piece (16 floats); slots the rule does not use are passed as given (unread).
        let size = (n / pieces + 15) / 16 * 16
        let use1 = kind != 0
        let use2 = kind == 2
        let b = Pieces(
            value: value.baseAddress, first: first.baseAddress, second: second.baseAddress, gradient: gradient.baseAddress,
            valueOut: valueOut.baseAddress, firstOut: firstOut.baseAddress, secondOut: secondOut.baseAddress,
            finite: finite.baseAddress!)
        let (lr, coefficient, beta2, epsilon) = (rate, p1, config.beta2, config.epsilon)
        DispatchQueue.concurrentPerform(iterations: pieces) { i in
            let start = min(n, i * size)
            let count = min(n, start + size) - start
            func at(_ p: UnsafePointer<Float>?, _ used: Bool = true) -> UnsafePointer<Float>? { used ? p.map { $0 + start } : p }
            func at(_ p: UnsafeMutablePointer<Float>?, _ used: Bool = true) -> UnsafeMutablePointer<Float>? {
                used ? p.map { $0 + start } : p
            }
            b.finite[i] =
                count == 0
                || ck_optimizer_update(
                    kind, count, lr, coefficient, beta2, epsilon, scale, at(b.value), at(b.first, use1), at(b.second, use2),
                    at(b.gradient), at(b.valueOut), at(b.firstOut, use1), at(b.secondOut, use2)) != 0
        }
        return finite.allSatisfy { $0 }
    }

    /// The buffers of one update, shared by the threads that each update a disjoint piece of them.
    private struct Pieces: @unchecked Sendable {
        let value, first, second, gradient: UnsafePointer<Float>?
        let valueOut, firstOut, secondOut: UnsafeMutablePointer<Float>?
        let finite: UnsafeMutablePointer<Bool>
    }

    /// Elements below which an update runs on one thread (a split costs more than it saves).
    public static let parallelGrain = 1 << 20
    /// Threads an update may use: the machine's cores, at most 8.
    public static let parallelism = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Whether every element of `x` is finite.
    public static func allFinite(_ x: UnsafeBufferPointer<Float>) -> Bool {
        x.isEmpty || ck_all_finite(x.count, x.baseAddress) != 0
    }
}

extension OptimizerConfig {
    /// Why these settings cannot train, or nil when they can: each number must be finite and in range.
    public var problem: String? {
        guard learningRate.isFinite, learningRate > 0 else { return "--learning-rate must be a positive finite number, got \(learningRate)" }
        switch kind {
        case .sgd: return nil
        case .momentum:
            guard momentum.isFinite, momentum >= 0, momentum < 1 else { return "--momentum must be in [0, 1), got \(momentum)" }
        case .adam:
            guard beta1.isFinite, beta1 > 0, beta1 < 1 else { return "--beta1 must be in (0, 1), got \(beta1)" }
            guard beta2.isFinite, beta2 > 0, beta2 < 1 else { return "--beta2 must be in (0, 1), got \(beta2)" }
            guard epsilon.isFinite, epsilon > 0 else { return "--epsilon must be a positive finite number, got \(epsilon)" }
        }
        return nil
    }
}
