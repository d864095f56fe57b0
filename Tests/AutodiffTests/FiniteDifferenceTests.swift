import Foundation
import Testing
import VariableScopes

@testable import Autodiff

/// Every op's gradient against central finite differences (early tinygrad's `gradcheck`, in spirit).
@Suite("Gradients against finite differences")
struct FiniteDifferenceTests {
    /// Builds `op` on random leaves, reduces its output to a scalar with MSE against a random target,
    /// and compares d(loss)/d(leaf) with (L(x + ε) - L(x - ε)) / 2ε for every element of every leaf.
    func check(
        _ shapes: [[Int]], positive: Bool = false, sourceLocation: SourceLocation = #_sourceLocation,
        _ build: (Tape, [Node]) -> Node
    ) {
        var rng = SplitMix64(seed: 42)
        let tape = Tape()
        let leaves = shapes.map { tape.placeholder($0) }
        for leaf in leaves {
            for k in 0..<leaf.count {
                let u = rng.nextUnit() * 2 - 1
                leaf.value[k] = positive ? abs(u) + 0.5 : u
            }
        }
        let out = build(tape, leaves)
        let target = tape.placeholder(out.shape)
        for k in 0..<target.count { target.value[k] = rng.nextUnit() - 0.5 }
        let loss = tape.meanSquaredError(out, target)
        tape.forward()
        tape.backward(from: loss)
        let analytic = leaves.map { Array($0.grad) }
        let eps: Float = 1e-2
        for (l, leaf) in leaves.enumerated() {
            var worst: Float = 0
            let scale = max(analytic[l].map(abs).max() ?? 0, 1e-3)
            for k in 0..<leaf.count {
                let saved = leaf.value[k]
                leaf.value[k] = saved + eps
                tape.forward()
                let up = loss.value[0]
                leaf.value[k] = saved - eps
                tape.forward()
                let down = loss.value[0]
                leaf.value[k] = saved
                let numeric = (up - down) / (2 * eps)
                worst = max(worst, abs(numeric - analytic[l][k]) / scale)
            }
            #expect(
                worst < 1e-2, "input \(l) of shape \(leaf.shape): relative error \(worst)",
                sourceLocation: sourceLocation)
        }
    }

    @Test func matmul() { check([[3, 4], [4, 5]]) { t, x in t.matmul(x[0], x[1]) } }
    @Test func affine() { check([[3, 4], [4, 5], [5]]) { t, x in t.affine(x[0], x[1], x[2]) } }
    @Test func addRow() { check([[3, 4], [4]]) { t, x in t.addRow(x[0], x[1]) } }
    @Test func add() { check([[2, 3], [2, 3]]) { t, x in t.add(x[0], x[1]) } }
    @Test func sub() { check([[2, 3], [2, 3]]) { t, x in t.sub(x[0], x[1]) } }
    @Test func mul() { check([[2, 3], [2, 3]]) { t, x in t.mul(x[0], x[1]) } }
    @Test func addScalar() { check([[2, 3]]) { t, x in t.addScalar(x[0], 1) } }
    @Test func sigmoid() { check([[2, 5]]) { t, x in t.sigmoid(x[0]) } }
    @Test func tanh() { check([[2, 5]]) { t, x in t.tanh(x[0]) } }
    @Test func concat() { check([[2, 3], [2, 1], [2, 2]]) { t, x in t.concatColumns(x) } }
    @Test func split() {
        check([[3, 8]]) { t, x in t.mul(t.splitColumns(x[0], parts: 4)[1], t.splitColumns(x[0], parts: 4)[3]) }
    }
    @Test func slice() { check([[3, 6]]) { t, x in t.sliceColumns(x[0], start: 2, width: 3) } }
    @Test func stack() { check([[2, 3], [2, 3], [2, 3]]) { t, x in t.stackSteps(x) } }
    @Test func selectStep() { check([[2, 4, 3]]) { t, x in t.selectStep(x[0], 2) } }
    @Test func batchDot() { check([[2, 4, 3], [2, 3]]) { t, x in t.batchDot(x[0], x[1]) } }
    @Test func softmax() { check([[3, 5]]) { t, x in t.softmaxRows(x[0]) } }
    @Test func weightedSum() { check([[2, 4], [2, 4, 3]]) { t, x in t.weightedSum(x[0], x[1]) } }
    @Test func meanSquaredError() {
        check([[2, 3], [2, 3]]) { t, x in t.addScalar(t.meanSquaredError(x[0], x[1]), 0) }
    }

    @Test func lstmGates() { check([[3, 8], [3, 2]]) { t, x in t.lstmGates(x[0], x[1], forgetBias: 1) } }

    @Test("the fused LSTM gates equal the same step built from elementary ops")
    func fusedEqualsComposed() {
        var rng = SplitMix64(seed: 5)
        let tape = Tape()
        let z = tape.placeholder([3, 12])
        let c = tape.placeholder([3, 3])
        for k in 0..<z.count { z.value[k] = rng.nextNormal() * 2 }
        for k in 0..<c.count { c.value[k] = rng.nextNormal() }
        let fused = tape.lstmGates(z, c, forgetBias: 1)
        let g = tape.splitColumns(z, parts: 4)
        let c2 = tape.add(
            tape.mul(tape.sigmoid(tape.addScalar(g[2], 1)), c), tape.mul(tape.sigmoid(g[0]), tape.tanh(g[1])))
        let h2 = tape.mul(tape.sigmoid(g[3]), tape.tanh(c2))
        tape.forward()
        let composed = tape.concatColumns([c2, h2])
        tape.forward()
        for k in 0..<fused.count { #expect(abs(fused.value[k] - composed.value[k]) < 1e-6) }
    }

    @Test("fast exp, sigmoid and tanh stay within 1e-6 of libm over the range that matters")
    func fastMath() {
        for x in stride(from: Float(-20), through: 20, by: 0.037) {
            let v = SIMD8<Float>(repeating: x)
            #expect(abs(FastMath.exp(v)[0] - Foundation.exp(x)) <= 3e-7 * Foundation.exp(x))
            #expect(abs(FastMath.sigmoid(v)[0] - 1 / (1 + Foundation.exp(-x))) < 1e-6)
            #expect(abs(FastMath.tanh(v)[0] - Foundation.tanh(x)) < 1e-6)
        }
    }

    @Test("a whole LSTM layer: memory, final c and final h, to x, kernel and bias")
    func lstmSequence() {
        check([[2, 3, 2], [5, 12], [12]]) { t, x in
            t.lstmSequence(x[0], kernel: x[1], bias: x[2], forgetBias: 1).node
        }
    }

    @Test("a whole attention decoder: predictions and attention, to every weight and the encoder's input")
    func attentionDecoder() {
        // x [B 2, T 3, D 1]; N 3, M 2, H 3.
        check([[2, 3, 1], [4, 12], [12], [5, 12], [12], [6, 2], [2], [2, 1]]) { t, x in
            let encoder = t.lstmSequence(x[0], kernel: x[1], bias: x[2], forgetBias: 1)
            return t.attentionDecoder(
                encoder, horizon: 3, kernel: x[3], bias: x[4], wTilde: x[5], bTilde: x[6], wTarget: x[7],
                forgetBias: 1
            ).node
        }
    }

    @Test("a node used twice receives the sum of both uses' gradients")
    func fanOut() { check([[2, 3]]) { t, x in t.mul(t.tanh(x[0]), t.sigmoid(x[0])) } }

    @Test("a whole attention step, composed")
    func attentionStep() {
        check([[2, 4, 3], [2, 3]]) { t, x in
            let a = t.softmaxRows(t.batchDot(x[0], x[1]))
            return t.concatColumns([t.weightedSum(a, x[0]), x[1]])
        }
    }
}
