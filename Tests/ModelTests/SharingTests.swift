import Autodiff
import Testing
import VariableScopes

@testable import Model

@Suite("Weight sharing in the unrolled decoder")
struct SharingTests {
    static let config = ModelConfig(batch: 3, window: 4, horizon: 5, inputDim: 1, hidden: 6, hidden2: 5)

    func feed(_ m: Seq2Seq) {
        var rng = SplitMix64(seed: 11)
        m.x.feed((0..<m.x.count).map { _ in rng.nextNormal() })
        m.y.feed((0..<m.y.count).map { _ in rng.nextNormal() })
    }

    @Test("seven variables whatever the horizon, with one decoder LSTM kernel", arguments: [1, 2, 12])
    func sevenVariables(horizon: Int) throws {
        var c = Self.config
        c.horizon = horizon
        let m = try Seq2Seq(c)
        #expect(m.variables.count == 7)
        #expect(
            m.variables.filter { $0.name.hasSuffix("rnn/lstm_cell/kernel") }.map(\.name)
                == ["encoder/rnn/lstm_cell/kernel", "lstm_cell_decoder/rnn/lstm_cell/kernel"])
        #expect(m.graph.warnings.isEmpty)
    }

    /// The decoder kernel's gradient is the sum over timesteps: compute each step's contribution by
    /// giving that step its own copy of the kernel (the `variable(...)` form does exactly that for
    /// the dense weights; here the copies are made by hand) and summing.
    @Test("the decoder's shared kernel gradient equals the sum of its per-timestep contributions")
    func kernelGradientIsSumOverSteps() throws {
        let shared = try Seq2Seq(Self.config, graph: Graph(seed: 3))
        feed(shared)
        shared.forwardBackward()
        let kernel = shared.graph.storedVariable("lstm_cell_decoder/rnn/lstm_cell/kernel")!
        let total = Array(kernel.gradient)

        // Per-step contributions: a tape where step t reads its own copy of the kernel.
        let perStep = try PerStepKernelModel(Self.config, copying: shared)
        let contributions = perStep.contributions()
        #expect(contributions.count == Self.config.horizon)
        let summed = (0..<total.count).map { k in contributions.reduce(0) { $0 + $1[k] } }
        let scale = total.map(abs).max()!
        #expect(zip(summed, total).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
        // And no single step carries the whole gradient.
        #expect(contributions.allSatisfy { c in zip(c, total).contains { abs($0 - $1) > 1e-3 * scale } })
    }

    @Test("the seed's variable(...) form makes separate dense weights per step, trained separately")
    func variableFormDuplicates() throws {
        var c = Self.config
        c.horizon = 2
        let m = try Seq2Seq(c, graph: Graph(seed: 3), form: .variable)
        #expect(
            m.variables.map(\.name) == [
                "encoder/rnn/lstm_cell/kernel", "encoder/rnn/lstm_cell/bias",
                "lstm_cell_decoder/rnn/lstm_cell/kernel", "lstm_cell_decoder/rnn/lstm_cell/bias",
                "lstm_cell_decoder/weights_tilde", "lstm_cell_decoder/bias_tilde", "lstm_cell_decoder/weights_target",
                "lstm_cell_decoder_1/weights_tilde", "lstm_cell_decoder_1/bias_tilde",
                "lstm_cell_decoder_1/weights_target",
            ])
        #expect(m.graph.warnings.count == 3)
        feed(m)
        m.forwardBackward()
        let w0 = m.graph.globalVariables.first { $0.name == "lstm_cell_decoder/weights_target" }!
        let w1 = m.graph.globalVariables.first { $0.name == "lstm_cell_decoder_1/weights_target" }!
        // Each copy gets only its own step's gradient, exactly as TensorFlow would give two tf.Variables.
        #expect(Array(w0.gradient) != Array(w1.gradient))
        #expect(w0.gradient.contains { $0 != 0 } && w1.gradient.contains { $0 != 0 })
        // An SGD step moves each copy by its own gradient, so the copies drift apart.
        let before0 = Array(w0.value)
        let before1 = Array(w1.value)
        for v in [w0, w1] { for k in 0..<v.count { v.value[k] -= 0.1 * v.gradient[k] } }
        #expect(zip(w0.value, before0).map { $0 - $1 } != zip(w1.value, before1).map { $0 - $1 })
    }
}

/// The fixed model rebuilt with the decoder LSTM kernel copied per timestep, so each copy's gradient
/// is that step's contribution alone.
struct PerStepKernelModel {
    let model: Seq2Seq
    let copies: [Variable]

    init(_ config: ModelConfig, copying source: Seq2Seq) throws {
        let g = Graph(seed: 3)
        // Step t's kernel is named lstm_cell_decoder/step_t/...: a scope with auto-reuse per step.
        model = try Seq2Seq(config, graph: g, kernelScopeForStep: { "step_\($0)" })
        for v in source.graph.globalVariables {
            for w in g.globalVariables
            where w.name == v.name
                || w.name.replacingOccurrences(of: #"/step_\d+"#, with: "", options: .regularExpression) == v.name
            {
                w.assign(Array(v.value))
            }
        }
        model.x.feed(Array(source.x.value))
        model.y.feed(Array(source.y.value))
        copies = g.globalVariables.filter {
            $0.name.hasPrefix("lstm_cell_decoder/rnn/step_") && $0.name.hasSuffix("kernel")
        }
    }

    func contributions() -> [[Float]] {
        model.forwardBackward()
        return copies.map { Array($0.gradient) }
    }
}
