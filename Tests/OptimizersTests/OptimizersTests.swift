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
