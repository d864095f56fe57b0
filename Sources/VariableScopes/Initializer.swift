import Foundation
import Tensors

/// How a variable gets its first value: TensorFlow's initializers, made deterministic.
///
/// Values depend only on the graph seed and the variable's name, so every process that creates a
/// variable (each worker, and the parameter server that owns it) gets bit-identical values.
public enum Initializer: Equatable, Sendable, CustomStringConvertible {
    case zeros
    case ones
    case constant(Float)
    /// Normal with the given mean and standard deviation (`tf.random_normal_initializer`).
    case normal(mean: Float = 0, stddev: Float)
    /// Normal, redrawn when more than two standard deviations from the mean (`tf.truncated_normal_initializer`).
    case truncatedNormal(mean: Float = 0, stddev: Float)
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)), Glorot & Bengio 2010; TensorFlow's default for floats.
    case glorotUniform
    /// Uniform in [lower, upper).
    case uniform(lower: Float, upper: Float)
    /// An explicit value (`tf.Variable(initial_value)`); its shape must be the variable's.
    case tensor(Tensor)

    public var description: String {
        switch self {
        case .zeros: return "zeros"
        case .ones: return "ones"
        case .constant(let v): return "constant(\(v))"
        case .normal(let m, let s): return "normal(mean: \(m), stddev: \(s))"
        case .truncatedNormal(let m, let s): return "truncatedNormal(mean: \(m), stddev: \(s))"
        case .glorotUniform: return "glorotUniform"
        case .uniform(let l, let u): return "uniform(\(l), \(u))"
        case .tensor(let t): return "tensor \(formatShape(t.shape))"
        }
    }

    /// The initial values of a variable.
    /// - Parameters:
    ///   - shape: the shape to fill.
    ///   - seed: the graph's global seed.
    ///   - name: the variable's full name; it keys the random stream.
    ///   - fanShape: the shape whose fans set the Glorot limit (the whole variable for a partition).
    public func values(shape: [Int], seed: UInt64, name: String, fanShape: [Int]? = nil) -> [Float] {
        let n = elementCount(shape)
        var rng = SplitMix64(seed: seed, name: name)
        switch self {
        case .zeros: return [Float](repeating: 0, count: n)
        case .ones: return [Float](repeating: 1, count: n)
        case .constant(let v): return [Float](repeating: v, count: n)
        case .normal(let mean, let stddev):
            return (0..<n).map { _ in mean + stddev * rng.nextNormal() }
        case .truncatedNormal(let mean, let stddev):
            return (0..<n).map { _ in
                var z = rng.nextNormal()
                while abs(z) > 2 { z = rng.nextNormal() }
                return mean + stddev * z
            }
        case .glorotUniform:
            // Fans in floating point: a shape from the wire may be far larger than any Int product.
            let (fanIn, fanOut) = Initializer.fanValues(fanShape ?? shape)
            let limit = Float(sqrt(6.0 / max(1, fanIn + fanOut)))
            return (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * limit }
        case .uniform(let lower, let upper):
            return (0..<n).map { _ in lower + (upper - lower) * rng.nextUnit() }
        case .tensor(let t):
            precondition(
                t.count == n,
                "initial value of shape \(formatShape(t.shape)) for a variable of shape \(formatShape(shape))")
            return t.scalars
        }
    }

    /// TensorFlow's `_compute_fans`: scalars 1/1, vectors n/n, matrices rows/columns, and for
    /// higher ranks the last two dimensions times the receptive field.
    public static func fans(_ shape: [Int]) -> (Int, Int) {
        switch shape.count {
        case 0: return (1, 1)
        case 1: return (shape[0], shape[0])
        case 2: return (shape[0], shape[1])
        default:
            let receptive = shape.dropLast(2).reduce(1, &*)
            return (shape[shape.count - 2] &* receptive, shape[shape.count - 1] &* receptive)
        }
    }

    /// `fans` in floating point, so that no shape can overflow.
    public static func fanValues(_ shape: [Int]) -> (Double, Double) {
        let d = shape.map(Double.init)
        switch d.count {
        case 0: return (1, 1)
        case 1: return (d[0], d[0])
        case 2: return (d[0], d[1])
        default:
            let receptive = d.dropLast(2).reduce(1, *)
            return (d[d.count - 2] * receptive, d[d.count - 1] * receptive)
        }
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014), seeded from the graph seed and an FNV-1a hash of a name.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public init(seed: UInt64, name: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01B3
        }
        state = h ^ (seed &* 0x9E37_79B9_7F4A_7C15)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Float {
        Float(next() >> 40) / Float(1 << 24)
    }

    /// Standard normal by Box–Muller.
    public mutating func nextNormal() -> Float {
        let u1 = Double((next() >> 11) + 1) / Double(1 << 53)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float(sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2))
    }
}
