import Foundation
import Testing

@testable import Optimizers

@Suite("Optimizer state")
struct OptimizerStateTests {
    @Test(
        "a staged update on copies equals the in-place one, bit for bit",
        arguments: [OptimizerConfig.Kind.sgd, .momentum, .adam])
    func stagedEqualsInPlace(kind: OptimizerConfig.Kind) {
        let config = OptimizerConfig(kind: kind, learningRate: 0.01)
        let grads: [[Float]] = [[0.5, -1, 2], [0.1, 0.2, -0.3], [3, 0, -2]]
        var inPlace: [Float] = [1, 2, 3]
        let slots = OptimizerSlots(count: 3)
        for g in grads { inPlace.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { slots.apply(config, value: v, gradient: $0) } } }
        var value: [Float] = [1, 2, 3]
        var first = [Float](repeating: 0, count: 3)
        var second = [Float](repeating: 0, count: 3)
        for (t, g) in grads.enumerated() {
            value.withUnsafeMutableBufferPointer { v in
                first.withUnsafeMutableBufferPointer { m in
                    second.withUnsafeMutableBufferPointer { s in
                        g.withUnsafeBufferPointer { OptimizerSlots.update(config, step: t + 1, value: v, first: m, second: s, gradient: $0) }
                    }
                }
            }
        }
        #expect(value == inPlace)
        #expect(first == slots.first && second == slots.second && slots.step == 3)
    }

    @Test("restored slots continue exactly where the saved ones were")
    func restoredSlots() {
        let config = OptimizerConfig(kind: .adam, learningRate: 0.1)
        let a = OptimizerSlots(count: 2)
        var va: [Float] = [1, 1]
        for g in [[1, 2], [3, 4]] as [[Float]] { va.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { a.apply(config, value: v, gradient: $0) } } }
        let b = OptimizerSlots(first: a.first, second: a.second, step: a.step)
        var vb = va
        let g: [Float] = [-1, 0.5]
        va.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { a.apply(config, value: v, gradient: $0) } }
        vb.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { b.apply(config, value: v, gradient: $0) } }
        #expect(va == vb)
    }

    @Test("settings that cannot train are named: NaN, infinite, zero or negative rates, betas outside (0, 1)")
    func problems() {
        #expect(OptimizerConfig().problem == nil)
        #expect(OptimizerConfig(learningRate: .nan).problem?.contains("--learning-rate") == true)
        #expect(OptimizerConfig(learningRate: .infinity).problem?.contains("--learning-rate") == true)
        #expect(OptimizerConfig(learningRate: -1).problem?.contains("--learning-rate") == true)
        #expect(OptimizerConfig(beta1: 1).problem?.contains("--beta1") == true)
        #expect(OptimizerConfig(beta2: -1).problem?.contains("--beta2") == true)
        #expect(OptimizerConfig(epsilon: 0).problem?.contains("--epsilon") == true)
        #expect(OptimizerConfig(kind: .momentum, momentum: .nan).problem?.contains("--momentum") == true)
        #expect(OptimizerConfig(kind: .momentum, momentum: 1).problem?.contains("--momentum") == true)
        #expect(OptimizerConfig(kind: .sgd, beta1: 5).problem == nil)  // betas do not matter to sgd
    }
}

/// The update rules written out in Swift, rounding as written (Swift never fuses a multiply and an add on
/// its own): the C kernels, vector and tail alike, must give these bits.
private func reference(
    _ c: OptimizerConfig, step: Int, value: inout [Float], first: inout [Float], second: inout [Float], gradient: [Float],
    scale: Float
) {
    switch c.kind {
    case .sgd:
        for k in value.indices { value[k] = value[k] - c.learningRate * (gradient[k] * scale) }
    case .momentum:
        for k in value.indices {
            let g = gradient[k] * scale
            first[k] = c.momentum * first[k] + g
            value[k] = value[k] - c.learningRate * first[k]
        }
    case .adam:
        let t = Double(step)
        let lr = Float(Double(c.learningRate) * (1 - pow(Double(c.beta2), t)).squareRoot() / (1 - pow(Double(c.beta1), t)))
        for k in value.indices {
            let g = gradient[k] * scale
            first[k] = c.beta1 * first[k] + (1 - c.beta1) * g
            second[k] = c.beta2 * second[k] + (1 - c.beta2) * g * g
            value[k] = value[k] - lr * first[k] / (second[k].squareRoot() + c.epsilon)
        }
    }
}

/// Runs the out-of-place kernel on copies of the arrays: the new value and slots, and whether all are finite.
private func outOfPlace(
    _ c: OptimizerConfig, step: Int, value: [Float], first: [Float], second: [Float], gradient: [Float], scale: Float
) -> (value: [Float], first: [Float], second: [Float], finite: Bool) {
    let n = value.count
    var (v2, f2, s2) = ([Float](repeating: 0, count: n), [Float](repeating: 0, count: n), [Float](repeating: 0, count: n))
    let finite = value.withUnsafeBufferPointer { v in
        first.withUnsafeBufferPointer { f in
            second.withUnsafeBufferPointer { s in
                gradient.withUnsafeBufferPointer { g in
                    v2.withUnsafeMutableBufferPointer { vo in
                        f2.withUnsafeMutableBufferPointer { fo in
                            s2.withUnsafeMutableBufferPointer { so in
                                OptimizerSlots.update(
                                    c, step: step, value: v, first: f, second: s, gradient: g, scale: scale, valueOut: vo,
                                    firstOut: fo, secondOut: so)
                            }
                        }
                    }
                }
            }
        }
    }
    return (v2, f2, s2, finite)
}

@Suite("Optimizer kernels")
struct OptimizerKernelTests {
    /// 8-wide vector body plus a scalar tail: 1003 exercises both, 5 only the tail.
    @Test(
        "the fused kernel equals the rule written out, bit for bit, in the vector body and the tail",
        arguments: [OptimizerConfig.Kind.sgd, .momentum, .adam], [5, 1003])
    func matchesReference(kind: OptimizerConfig.Kind, n: Int) {
        var rng = SystemRandomNumberGenerator()
        let config = OptimizerConfig(kind: kind, learningRate: 0.003)
        var value = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
        var first = (0..<n).map { _ in Float.random(in: -0.1...0.1, using: &rng) }
        var second = (0..<n).map { _ in Float.random(in: 0...0.01, using: &rng) }
        var (rv, rf, rs) = (value, first, second)
        for step in 1...4 {
            let g = (0..<n).map { _ in Float.random(in: -5...5, using: &rng) }
            let scale: Float = step == 3 ? 0.37 : 1
            reference(config, step: step, value: &rv, first: &rf, second: &rs, gradient: g, scale: scale)
            let (nv, nf, ns, finite) = outOfPlace(
                config, step: step, value: value, first: first, second: second, gradient: g, scale: scale)
            #expect(finite)
            value = nv
            if kind != .sgd { first = nf }
            if kind == .adam { second = ns }
            #expect(value == rv, "value after step \(step)")
            #expect(kind == .sgd || first == rf, "first slot after step \(step)")
            #expect(kind != .adam || second == rs, "second slot after step \(step)")
        }
    }

    @Test("an update that would make a value or a slot NaN or infinite says so, wherever it happens", arguments: [0, 7, 8, 1002])
    func reportsNonFinite(at position: Int) {
        let n = 1003
        for kind in [OptimizerConfig.Kind.sgd, .momentum, .adam] {
            let config = OptimizerConfig(kind: kind, learningRate: 0.01)
            var value = [Float](repeating: 1, count: n)
            let slots = [Float](repeating: 0, count: n)
            func finite(_ g: [Float]) -> Bool {
                outOfPlace(config, step: 1, value: value, first: slots, second: slots, gradient: g, scale: 1).finite
            }
            var g = [Float](repeating: 0.5, count: n)
            let plain = finite(g)
            #expect(plain, "\(kind): a plain gradient is finite")
            g[position] = .nan
            let nan = finite(g)
            #expect(!nan, "\(kind): NaN at \(position)")
            g[position] = .infinity
            let infinite = finite(g)
            #expect(!infinite, "\(kind): infinity at \(position)")
            // Finite in, overflowing out: g² overflows Adam's second slot; a value at the float limit stepped
            // further out overflows sgd's and momentum's.
            if kind == .adam {
                g[position] = 1e30
            } else {
                g[position] = .greatestFiniteMagnitude
                value[position] = -.greatestFiniteMagnitude
            }
            let overflow = finite(g)
            #expect(!overflow, "\(kind): overflow at \(position)")
        }
    }

    @Test("allFinite finds a NaN or an infinity anywhere, and passes finite extremes")
    func allFinite() {
        var x = [Float](repeating: 1, count: 1003)
        x[500] = .greatestFiniteMagnitude
        x[501] = -.leastNonzeroMagnitude
        #expect(x.withUnsafeBufferPointer { OptimizerSlots.allFinite($0) })
        for k in [0, 9, 1002] {
            var y = x
            y[k] = .nan
            #expect(!y.withUnsafeBufferPointer { OptimizerSlots.allFinite($0) })
            y[k] = -.infinity
            #expect(!y.withUnsafeBufferPointer { OptimizerSlots.allFinite($0) })
        }
        #expect([Float]().withUnsafeBufferPointer { OptimizerSlots.allFinite($0) })
    }
}
