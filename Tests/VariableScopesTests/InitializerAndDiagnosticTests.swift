import Tensors
import Testing

@testable import VariableScopes

@Suite("Initializers")
struct InitializerTests {
    @Test("same seed and name give the same values in every process; another name or seed differs")
    func deterministic() throws {
        let a = Graph(seed: 7)
        let b = Graph(seed: 7)
        let c = Graph(seed: 8)
        let va = try a.getVariable("k", shape: [20, 8])
        let vb = try b.getVariable("k", shape: [20, 8])
        let vc = try c.getVariable("k", shape: [20, 8])
        let other = try a.getVariable("k2", shape: [20, 8])
        #expect(Array(va.value) == Array(vb.value))
        #expect(Array(va.value) != Array(vc.value))
        #expect(Array(va.value) != Array(other.value))
    }

    @Test("Glorot uniform stays within sqrt(6 / (fan_in + fan_out)) and fills the range")
    func glorot() {
        let values = Initializer.glorotUniform.values(shape: [65, 256], seed: 1, name: "kernel")
        let limit = Float((6.0 / Double(65 + 256)).squareRoot())
        #expect(values.allSatisfy { abs($0) <= limit })
        #expect(values.max()! > 0.95 * limit && values.min()! < -0.95 * limit)
        #expect(Initializer.fans([3, 3, 4, 8]) == (36, 72))
        #expect(Initializer.fans([]) == (1, 1))
    }

    @Test("normal has the asked mean and stddev; truncated normal never passes two stddevs")
    func normals() {
        let n = Initializer.normal(mean: 1, stddev: 0.1).values(shape: [20000], seed: 3, name: "w")
        let mean = n.reduce(0, +) / Float(n.count)
        let sd = (n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(n.count)).squareRoot()
        #expect(abs(mean - 1) < 0.005 && abs(sd - 0.1) < 0.005)
        let t = Initializer.truncatedNormal(stddev: 2).values(shape: [20000], seed: 3, name: "w")
        #expect(t.allSatisfy { abs($0) <= 4 })
        #expect(Initializer.zeros.values(shape: [3], seed: 0, name: "z") == [0, 0, 0])
        #expect(Initializer.constant(2.5).values(shape: [2], seed: 0, name: "c") == [2.5, 2.5])
    }

    @Test("a scope's initializer and dtype are defaults for getVariable inside it, and inherited")
    func scopeDefaults() throws {
        let g = Graph()
        try g.variableScope("s", initializer: .constant(3), dtype: .float64) { _ in
            try g.variableScope("inner") { _ in
                let v = try g.getVariable("w", shape: [2])
                #expect(Array(v.value) == [3, 3])
                #expect(v.dtype == .float64)
                #expect(try g.getVariable("z", shape: [1], initializer: .zeros).value[0] == 0)
            }
        }
    }

    @Test("parts of a partitioned Glorot variable use the whole variable's fans")
    func partitionFans() throws {
        let g = Graph()
        let v = try g.variableScope("p", partitioner: .fixedSize(2)) { _ in try g.getVariable("k", shape: [100, 4]) }
        let limit = Float((6.0 / 104.0).squareRoot())
        #expect(v.parts.allSatisfy { p in p.value.allSatisfy { abs($0) <= limit } })
        #expect(v.parts.flatMap { Array($0.value) }.contains { abs($0) > 0.9 * limit })
    }
}

@Suite("The duplicate-variable diagnostic")
struct DiagnosticTests {
    @Test("one warning per duplicated name, whatever the horizon, listing every copy")
    func seedHorizon12() throws {
        let g = Graph()
        try SeedProgram.build(g, window: 12, hidden: 8, hidden2: 4, input: 1, useGetVariable: false)
        #expect(g.warnings.count == 3)
        #expect(g.warnings[0].created.count == 11)
        #expect(g.warnings[0].created.last == "lstm_cell_decoder_11/weights_tilde")
        #expect(g.warnings.allSatisfy { $0.reusing && $0.reentered })
        let text = g.warnings[2].description
        #expect(
            text.contains("lstm_cell_decoder/weights_target") && text.contains("lstm_cell_decoder_1/weights_target"))
        #expect(g.globalVariables.count == 4 + 3 * 12)
    }

    @Test("variable(...) at the root, or in a first, non-reusing entry, is not flagged")
    func quietWhenFine() throws {
        let g = Graph()
        try g.variable(initialValue: Tensor(1), name: "step")
        try g.variableScope("once") { _ in try g.variable(initialValue: Tensor(1), name: "v") }
        #expect(g.warnings.isEmpty)
    }

    @Test("a re-entered scope without reuse is flagged as re-entered")
    func reentered() throws {
        let g = Graph()
        try g.variableScope("s") { _ in try g.variable(initialValue: Tensor(0), name: "v") }
        try g.variableScope("s") { _ in try g.variable(initialValue: Tensor(0), name: "v") }
        #expect(g.warnings.count == 1)
        #expect(g.warnings[0].intended == "s/v" && g.warnings[0].created == ["s_1/v"])
        #expect(!g.warnings[0].reusing && g.warnings[0].reentered)
    }

    @Test("invalid names are refused with the name")
    func invalidNames() {
        let g = Graph()
        #expect(throws: VariableScopeError.invalidName("bad name")) { try g.variableScope("bad name") { _ in } }
        #expect(throws: VariableScopeError.invalidName("_x")) { try g.variable(initialValue: Tensor(0), name: "_x") }
        #expect(throws: VariableScopeError.shapeRequired(name: "w")) { try g.getVariable("w") }
    }
}
