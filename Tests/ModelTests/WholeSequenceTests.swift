import Autodiff
import Testing
import VariableScopes

@testable import Model

/// The fixed model runs its encoder and decoder as two whole-sequence ops; the step-by-step graph of
/// elementary ops (still used when steps have their own weights) is the reference for them.
@Suite("Whole-sequence ops against the step-by-step graph")
struct WholeSequenceTests {
    @Test(
        "the same variables, loss, predictions, attention and gradients",
        arguments: [
            ModelConfig(batch: 3, window: 4, horizon: 5, inputDim: 1, hidden: 6, hidden2: 5),
            ModelConfig(batch: 2, window: 7, horizon: 3, inputDim: 2, hidden: 9, hidden2: 11),
            ModelConfig(batch: 4, window: 24, horizon: 12, inputDim: 1, hidden: 16, hidden2: 8),
        ])
    func equal(config: ModelConfig) throws {
        let fused = try Seq2Seq(config, graph: Graph(seed: 7))
        let reference = try Seq2Seq(config, graph: Graph(seed: 7), kernelScopeForStep: nil, stepByStep: true)
        #expect(fused.variables.map(\.name) == reference.variables.map(\.name))
        #expect(fused.tape.variables.map(\.name) == reference.tape.variables.map(\.name))
        var rng = SplitMix64(seed: 13)
        let x = (0..<fused.x.count).map { _ in rng.nextNormal() }
        let y = (0..<fused.y.count).map { _ in rng.nextNormal() }
        for m in [fused, reference] {
            m.x.feed(x)
            m.y.feed(y)
        }
        // Twice: the second pass shows nothing is left over from the first (buffers written, not added).
        for _ in 0..<2 {
            let a = fused.forwardBackward()
            let b = reference.forwardBackward()
            #expect(abs(a - b) <= 1e-5 * max(abs(b), 1))
            #expect(close(Array(fused.predictions.value), Array(reference.predictions.value)))
            for (p, q) in zip(fused.attention, reference.attention) { #expect(close(Array(p.value), Array(q.value))) }
            for (v, w) in zip(fused.variables, reference.variables) {
                #expect(close(Array(v.gradient), Array(w.gradient)), "gradient of \(v.name)")
            }
        }
    }

    /// Within 1e-4 of the largest reference value, the goldens' tolerance: the two graphs round differently
    /// (the whole-sequence ops sum in other orders, and their C kernels use libm or their own exp).
    func close(_ a: [Float], _ b: [Float]) -> Bool {
        let scale = max(b.map(abs).max() ?? 0, 1e-6)
        return a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 * scale }
    }
}
