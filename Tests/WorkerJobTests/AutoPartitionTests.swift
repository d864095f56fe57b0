import Model
import Testing
import VariableScopes
import WorkerRuntime

@testable import WorkerJob

@Suite("--partitioner auto")
struct AutoPartitionTests {
    @Test("the model's shapes, known before it is built, are the ones it builds")
    func shapes() throws {
        let config = ModelConfig(batch: 2, window: 5, horizon: 3, inputDim: 2, hidden: 7, hidden2: 5)
        let m = try Seq2Seq(config, graph: Graph(seed: 0))
        #expect(m.variables.map(\.shape) == config.variableShapes)
        #expect(m.variables.reduce(0) { $0 + $1.byteCount } == config.parameterBytes)
    }

    @Test("every server's bytes are within 10% of the mean, for 2 to 8 servers and models of 1 MB to 59 MB", arguments: [256, 1024])
    func balanced(hidden: Int) throws {
        let config = ModelConfig(batch: 1, window: 2, horizon: 1, inputDim: 1, hidden: hidden, hidden2: hidden)
        for servers in [2, 3, 4, 8] {
            let p = try #require(resolve(.auto, config: config, servers: servers))
            // Only the variables: a Graph with the model's shapes under the partitioner, no tape.
            let g = Graph(seed: 0)
            try g.variableScope("m", partitioner: p) { _ in
                for (i, shape) in config.variableShapes.enumerated() { _ = try g.getVariable("v\(i)", shape: shape, initializer: .zeros) }
            }
            let load = Placement(variables: g.trainableVariables, servers: servers).load
            let mean = Double(load.reduce(0, +)) / Double(servers)
            for l in load { #expect(abs(Double(l) - mean) <= 0.1 * mean, "hidden \(hidden), \(servers) servers: \(load)") }
        }
        // One server: nothing to balance, nothing split.
        #expect(resolve(.auto, config: config, servers: 1) == nil)
    }
}
