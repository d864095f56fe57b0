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

    /// Applies one update to `value` from `gradient` under `config`.
    public func apply(
        _ config: OptimizerConfig, value: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>
    ) {
        precondition(value.count == gradient.count && value.count == first.count, "optimizer slot size mismatch")
        step += 1
        let lr = config.learningRate
        switch config.kind {
        case .sgd:
            for k in 0..<value.count { value[k] -= lr * gradient[k] }
        case .momentum:
            let mu = config.momentum
            first.withUnsafeMutableBufferPointer { acc in
                for k in 0..<value.count {
                    acc[k] = mu * acc[k] + gradient[k]
                    value[k] -= lr * acc[k]
                }
            }
        case .adam:
            let (b1, b2, eps) = (config.beta1, config.beta2, config.epsilon)
            let t = Double(step)
            let lrT = Float(Double(lr) * (1 - pow(Double(b2), t)).squareRoot() / (1 - pow(Double(b1), t)))
            first.withUnsafeMutableBufferPointer { m in
                second.withUnsafeMutableBufferPointer { v in
                    for k in 0..<value.count {
                        let g = gradient[k]
                        m[k] = b1 * m[k] + (1 - b1) * g
                        v[k] = b2 * v[k] + (1 - b2) * g * g
                        value[k] -= lrT * m[k] / (v[k].squareRoot() + eps)
                    }
                }
            }
        }
    }
}
