import Foundation
import Tensors
import Testing

@testable import VariableScopes

/// Rules of the spec beyond its listed scenarios, each checked against what TensorFlow 2.21 printed
/// for the same program (`Fixtures/tf_extra_scopes.py` -> `Fixtures/variable-scopes-extra.json`).
@Suite("More variable-scope rules, checked against TensorFlow")
struct ExtraScenarioTests {
    static let expected: [String: (names: [String], shapes: [[Int]], error: String?)] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/variable-scopes-extra.json")
        let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: [String: Any]]
        return json.mapValues { e in
            let vars = e["variables"] as! [[Any]]
            return (vars.map { $0[0] as! String }, vars.map { $0[1] as! [Int] }, e["error"] as? String)
        }
    }()

    func V(_ g: Graph, _ name: String) throws { try g.variable(initialValue: Tensor(0), name: name) }

    /// Runs a scenario and compares the variable names and shapes, and whether it failed.
    func run(
        _ scenario: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (Graph) throws -> Void
    ) -> Error? {
        let g = Graph()
        var caught: Error?
        do { try body(g) } catch { caught = error }
        let want = Self.expected[scenario]!
        #expect(g.globalVariables.map(\.name) == want.names, sourceLocation: sourceLocation)
        #expect(g.globalVariables.map(\.shape) == want.shapes, sourceLocation: sourceLocation)
        #expect((caught != nil) == (want.error != nil), "\(String(describing: caught))", sourceLocation: sourceLocation)
        return caught
    }

    @Test func dtypeMismatch() {
        let e = run("dtype_mismatch") { g in
            try g.variableScope("d") { _ in try g.getVariable("w", shape: [1]) }
            try g.variableScope("d", reuse: true) { _ in try g.getVariable("w", shape: [1], dtype: .float64) }
        }
        #expect(e as? VariableScopeError == .dtypeMismatch(name: "d/w", specified: .float64, found: .float32))
        #expect("\(e!)" == "Trying to share variable d/w, but specified dtype float64 and found dtype float32.")
    }

    @Test func defaultNamesAreUniquifiedAndResetWhenTheParentCloses() {
        _ = run("default_names") { g in
            for _ in 0..<3 {
                try g.variableScope(defaultName: "layer") { _ in
                    try g.getVariable("w", shape: [1])
                    try V(g, "v")
                }
            }
            try g.variableScope("outer") { _ in
                try g.variableScope(defaultName: "layer") { _ in try g.getVariable("w", shape: [1]) }
            }
            try g.variableScope("outer") { _ in
                try g.variableScope(defaultName: "layer") { _ in
                    try g.getVariable("w2", shape: [1])
                    try V(g, "v")
                }
            }
        }
    }

    @Test func reenteringByObjectUsesTheAbsoluteName() {
        _ = run("reenter_object") { g in
            let a = try g.variableScope("a") { scope in
                try g.getVariable("w", shape: [1])
                return scope
            }
            try g.variableScope("b") { _ in
                try g.variableScope(a, reuse: true) { _ in
                    try g.getVariable("w", shape: [1])
                    try V(g, "v")
                }
                try g.variableScope(a) { _ in
                    try g.getVariable("u", shape: [1])
                    try V(g, "v")
                }
            }
        }
    }

    @Test func reuseVariablesSwitchesTheScopeAndStaysOnTheObject() {
        _ = run("reuse_variables") { g in
            let s = try g.variableScope("r") { scope in
                let w1 = try g.getVariable("w", shape: [1])
                scope.reuseVariables()
                let w2 = try g.getVariable("w", shape: [1])
                #expect(w1 === w2)
                return scope
            }
            try g.variableScope(s) { _ in try g.getVariable("w", shape: [1]) }
        }
    }

    @Test func falseCannotSwitchOffAReusingParent() {
        let e = run("inherit_false") { g in
            try g.variableScope("p") { _ in try g.getVariable("w", shape: [1]) }
            try g.variableScope("p", reuse: true) { _ in
                try g.variableScope("q", reuse: false) { _ in try g.getVariable("w", shape: [1]) }
            }
        }
        #expect(e as? VariableScopeError == .doesNotExist(name: "p/q/w"))
    }

    @Test func nameScopesPrefixVariablesButNotGetVariable() {
        _ = run("name_scope_ignored") { g in
            try g.nameScope("ns") { _ in
                try g.getVariable("w", shape: [1])
                try V(g, "v")
                try g.variableScope("a") { _ in
                    try g.getVariable("w", shape: [1])
                    try V(g, "v")
                }
            }
            try g.nameScope("ns") { scope in
                #expect(scope == "ns_1/")
                try V(g, "v")
            }
        }
    }

    @Test func uniqueNamesAreCaseInsensitive() {
        _ = run("case_insensitive") { g in
            for n in ["X", "x", "x_1", "x"] { try V(g, n) }
        }
    }

    @Test func getVariableAfterAVariableOfTheSameNameIsRenamedButStoredUnderItsName() throws {
        _ = run("var_then_get") { g in
            try g.variableScope("a") { _ in try V(g, "w") }
            try g.variableScope("a") { _ in try g.getVariable("w", shape: [1]) }
            #expect(g.storedVariable("a/w")?.name == "a/w_1")
        }
    }

    @Test func anEmptyScopeNameKeepsTensorFlowsDoubleSlash() {
        _ = run("empty_scope") { g in
            try g.variableScope("s1") { _ in
                try g.variableScope("") { _ in
                    try g.getVariable("v4", shape: [1])
                    try V(g, "v")
                }
            }
            try g.variableScope("") { _ in try g.getVariable("top", shape: [1]) }
        }
    }

    @Test func autoInsideAReusingParentCreates() {
        _ = run("auto_in_reuse") { g in
            try g.variableScope("k") { _ in try g.getVariable("w", shape: [1]) }
            try g.variableScope("k", reuse: true) { _ in
                try g.variableScope("m", reuse: .auto) { _ in try g.getVariable("z", shape: [1]) }
            }
        }
    }

    @Test func nestedScopesOfASecondEntry() {
        _ = run("nested_reentry_names") { g in
            for i in 0..<2 {
                try g.variableScope("dec", reuse: i > 0) { _ in
                    try g.variableScope("rnn") { _ in
                        try g.getVariable("k", shape: [1])
                        try V(g, "v")
                    }
                }
            }
        }
    }

    @Test func reuseWithOnlyADefaultNameIsRefused() {
        let e = run("default_name_reuse_error") { g in
            try g.variableScope(defaultName: "x", reuse: .reuse) { _ in }
        }
        #expect(e as? VariableScopeError == .reuseWithoutName(defaultName: "x"))
    }

    @Test func partitionedReuseChecksThePartitions() {
        let e = run("partition_reuse") { g in
            try g.variableScope("p", partitioner: .fixedSize(2)) { _ in try g.getVariable("e", shape: [5, 2]) }
            try g.variableScope("p", reuse: true, partitioner: .fixedSize(2)) { _ in
                try g.getVariable("e", shape: [5, 2])
            }
            try g.variableScope("p", reuse: true, partitioner: .fixedSize(3)) { _ in
                try g.getVariable("e", shape: [5, 2])
            }
        }
        #expect(e as? VariableScopeError == .partitionMismatch(name: "p/e", specified: [3, 1], found: [2, 1]))
    }

    @Test func partitionsNeverOutnumberRows() {
        _ = run("partition_small") { g in
            let e = try g.variableScope("p", partitioner: .fixedSize(4)) { _ in try g.getVariable("e", shape: [2, 3]) }
            #expect(e.parts.count == 2)
        }
    }

    @Test func aScopeObjectKeepsItsOwnModeInsideAReusingParent() {
        _ = run("object_inside_reusing_parent") { g in
            let o = try g.variableScope("o") { $0 }
            try g.variableScope("z", reuse: true) { _ in
                try g.variableScope(o) { _ in try g.getVariable("w", shape: [1]) }
            }
        }
    }

    @Test func everyExtraScenarioIsCovered() {
        #expect(Self.expected.count == 15)
    }
}
