import Testing
import VariableScopes

@testable import LoadGenerator

@Suite("Load model")
struct LoadModelTests {
    @Test("the 58k preset is the seed model: seven variables, 58,240 parameters, the seed's names")
    func seedModel() throws {
        let model = try LoadModel(hidden: #require(LoadModel.preset("58k")))
        let vars = try model.build(seed: 1)
        #expect(vars.count == 7)
        #expect(vars.reduce(0) { $0 + $1.count } == 58_240)
        #expect(model.parameterCount == 58_240)
        #expect(vars.map(\.name).contains("lstm_cell_decoder/rnn/lstm_cell/kernel"))
        #expect(vars.map(\.name).contains("encoder/rnn/lstm_cell/kernel"))
    }

    @Test(
        "the 1m and 15m presets count 921,088 and 14,694,400 parameters",
        arguments: [("1m", 921_088), ("15m", 14_694_400)])
    func presets(name: String, parameters: Int) throws {
        let model = try LoadModel(hidden: #require(LoadModel.preset(name)))
        #expect(model.parameterCount == parameters)
        #expect(model.shapes.reduce(0) { $0 + $1.shape.reduce(1, *) } == parameters)
    }

    @Test(
        "partitioned into 4 parts, each variable becomes part_0...part_3 along axis 0 (bias_tilde, one row, stays part_0), with the same parameters"
    )
    func partitioned() throws {
        let vars = try LoadModel(hidden: 16, parts: 4).build(seed: 1)
        #expect(vars.count == 6 * 4 + 1)
        #expect(vars.contains { $0.name == "lstm_cell_decoder/bias_tilde/part_0" && $0.shape == [1, 16] })
        let total = vars.reduce(0) { $0 + $1.count }
        #expect(total == 14 * 16 * 16 + 14 * 16)
        #expect(vars.contains { $0.name == "lstm_cell_decoder/rnn/lstm_cell/kernel/part_3" && $0.shape == [8, 64] })
    }

    @Test("the precomputed gradients are finite and not all zero, so every push is applied")
    func gradients() throws {
        for v in try LoadModel(hidden: 8).build(seed: 1) {
            let values = Array(v.gradient)
            #expect(values.allSatisfy { $0.isFinite })
            #expect(values.contains { $0 != 0 })
        }
    }

    @Test("a width outside 1...4096 is refused, naming it")
    func badWidth() {
        #expect(throws: LoadError.badModel("hidden 0 is outside 1...4096")) { _ = try LoadModel(hidden: 0) }
    }
}
