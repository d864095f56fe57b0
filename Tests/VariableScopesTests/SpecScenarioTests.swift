import Foundation
import Tensors
import Testing

@testable import VariableScopes

/// The scenarios of `spec/variable-scopes.json`, which TensorFlow 2.21 (`tf.compat.v1`) printed,
/// rebuilt with this project's API and compared name by name, shape by shape.
@Suite("TensorFlow's variable-scope scenarios")
struct SpecScenarioTests {
    struct Expected {
        let variables: [(String, [Int])]
        let error: String?
    }

    /// The fixture copied from `../shared/spec`, read from the shared folder when it is there.
    static let expected: [String: Expected] = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let candidates = [
            here.appendingPathComponent("../../../shared/spec/variable-scopes.json"),
            here.appendingPathComponent("../Fixtures/variable-scopes.json"),
        ]
        let url = candidates.first { FileManager.default.fileExists(atPath: $0.path) }!
        let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: [String: Any]]
        return json.mapValues { entry in
            let vars = (entry["variables"] as! [[Any]]).map { ($0[0] as! String, $0[1] as! [Int]) }
            return Expected(variables: vars, error: entry["error"] as? String)
        }
    }()

    /// TF's `tf.Variable(0.0, name=n)`.
    func V(_ g: Graph, _ name: String) throws { try g.variable(initialValue: Tensor(0), name: name) }

    func check(_ scenario: String, _ g: Graph, error: Error? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let want = Self.expected[scenario]!
        #expect(g.globalVariables.map(\.name) == want.variables.map(\.0), sourceLocation: sourceLocation)
        #expect(g.globalVariables.map(\.shape) == want.variables.map(\.1), sourceLocation: sourceLocation)
        if let tfError = want.error {
            let ours = try! #require(error as? VariableScopeError, sourceLocation: sourceLocation)
            // Same variable name and shapes as TensorFlow's message; hint reworded in our API's terms.
            let prefix = tfError.components(separatedBy: ". Did you mean").first!
                .replacingOccurrences(of: "tf.get_variable()", with: "getVariable()")
            #expect(ours.description.hasPrefix(prefix), "\(ours) vs \(tfError)", sourceLocation: sourceLocation)
        } else {
            #expect(error == nil, sourceLocation: sourceLocation)
        }
    }

    @Test func answerExample() throws {
        let g = Graph()
        try g.variableScope("foo", reuse: .auto) { _ in
            for _ in 0..<3 {
                try V(g, "x")
                try g.getVariable("y", shape: [])
            }
        }
        check("answer_example", g)
    }

    @Test func createTwice() throws {
        let g = Graph()
        try g.variableScope("a") { _ in try g.getVariable("w", shape: [2, 3]) }
        let error = #expect(throws: VariableScopeError.alreadyExists(name: "a/w")) {
            try g.variableScope("a") { _ in try g.getVariable("w", shape: [2, 3]) }
        }
        check("create_twice", g, error: error)
    }

    @Test func reuseMissing() throws {
        let g = Graph()
        let error = #expect(throws: VariableScopeError.doesNotExist(name: "b/w")) {
            try g.variableScope("b", reuse: true) { _ in try g.getVariable("w", shape: [2, 3]) }
        }
        check("reuse_missing", g, error: error)
    }

    @Test func shapeMismatch() throws {
        let g = Graph()
        try g.variableScope("a") { _ in try g.getVariable("w", shape: [2, 3]) }
        let error = #expect(throws: VariableScopeError.shapeMismatch(name: "a/w", specified: [3, 3], found: [2, 3])) {
            try g.variableScope("a", reuse: true) { _ in try g.getVariable("w", shape: [3, 3]) }
        }
        check("shape_mismatch", g, error: error)
    }

    @Test func variableInReopenedScope() throws {
        let g = Graph()
        try g.variableScope("s") { _ in try V(g, "v") }
        try g.variableScope("s") { _ in try V(g, "v") }
        try g.variableScope("s", reuse: true) { _ in try V(g, "v") }
        check("variable_in_reopened_scope", g)
    }

    @Test func loopReuseIndex() throws {
        let g = Graph()
        for i in 0..<3 {
            try g.variableScope("dec", reuse: i > 0) { _ in
                try g.getVariable("kernel", shape: [4, 4])
                try V(g, "bias")
            }
        }
        check("loop_reuse_index", g)
    }

    @Test func autoReuseCreatesThenReuses() throws {
        let g = Graph()
        for _ in 0..<2 {
            try g.variableScope("m", reuse: .auto) { _ in
                let a = try g.getVariable("w", shape: [2])
                let b = try g.getVariable("w", shape: [2])
                #expect(a === b)
            }
        }
        try g.variableScope("m") { _ in try g.getVariable("z", shape: [1]) }
        check("auto_reuse_creates_then_reuses", g)
    }

    @Test func trainableFlag() throws {
        let g = Graph()
        try g.variableScope("t") { _ in
            try g.getVariable("w", shape: [1], trainable: false)
            try g.getVariable("u", shape: [1])
        }
        check("trainable_flag", g)
        #expect(g.trainableVariables.map(\.name) == ["t/u"])
    }

    @Test func partitioned() throws {
        let g = Graph()
        let emb = try g.variableScope("p", partitioner: .fixedSize(3)) { _ in try g.getVariable("emb", shape: [10, 4]) }
        check("partitioned", g)
        #expect(emb.parts.map(\.shape) == [[4, 4], [3, 4], [3, 4]])
        #expect(emb.name == "p/emb")
    }

    /// The seed's decoder loop, window 2, hidden 64, input 1, with `tf.Variable` for the dense weights.
    @Test func seedOriginal() throws {
        let g = Graph()
        try SeedProgram.build(g, window: 2, hidden: 64, hidden2: 64, input: 1, useGetVariable: false)
        check("seed_original_window2", g)
        #expect(g.warnings.count == 3)
        #expect(
            g.warnings.map(\.intended) == [
                "lstm_cell_decoder/weights_tilde", "lstm_cell_decoder/bias_tilde",
                "lstm_cell_decoder/weights_target",
            ])
        #expect(g.warnings[0].created == ["lstm_cell_decoder_1/weights_tilde"])
        #expect(g.warnings[0].description.contains("getVariable(\"weights_tilde\""))
    }

    @Test func seedFixed() throws {
        let g = Graph()
        try SeedProgram.build(g, window: 2, hidden: 64, hidden2: 64, input: 1, useGetVariable: true)
        check("seed_fixed_window2", g)
        #expect(g.warnings.isEmpty)
    }

    @Test("every scenario in the fixture is covered here")
    func coverage() {
        let covered: Set = [
            "answer_example", "create_twice", "reuse_missing", "shape_mismatch",
            "variable_in_reopened_scope", "loop_reuse_index", "auto_reuse_creates_then_reuses",
            "trainable_flag", "partitioned", "seed_original_window2", "seed_fixed_window2",
        ]
        #expect(Set(Self.expected.keys) == covered)
    }
}

/// The variable-creating skeleton of the seed's program (its encoder and decoder loop), without the math.
enum SeedProgram {
    static func lstmCell(_ g: Graph, input: Int, hidden: Int) throws {
        try g.variableScope("rnn") { _ in
            try g.variableScope("lstm_cell") { _ in
                try g.getVariable("kernel", shape: [input + hidden, 4 * hidden])
                try g.getVariable("bias", shape: [4 * hidden], initializer: .zeros)
            }
        }
    }

    static func build(_ g: Graph, window: Int, hidden: Int, hidden2: Int, input: Int, useGetVariable: Bool) throws {
        try g.variableScope("encoder") { _ in try lstmCell(g, input: input, hidden: hidden) }
        for index in 0..<window {
            try g.variableScope("lstm_cell_decoder", reuse: index > 0) { _ in
                try lstmCell(g, input: hidden2, hidden: hidden)
                if useGetVariable {
                    try g.getVariable("weights_tilde", shape: [2 * hidden, hidden2], initializer: .normal(stddev: 0.1))
                    try g.getVariable("bias_tilde", shape: [1, hidden2], initializer: .zeros)
                    try g.getVariable("weights_target", shape: [hidden2, 1], initializer: .normal(stddev: 0.1))
                } else {
                    try g.variable(
                        shape: [2 * hidden, hidden2], initializer: .normal(stddev: 0.1), name: "weights_tilde")
                    try g.variable(shape: [1, hidden2], initializer: .zeros, name: "bias_tilde")
                    try g.variable(shape: [hidden2, 1], initializer: .normal(stddev: 0.1), name: "weights_target")
                }
            }
        }
    }
}
