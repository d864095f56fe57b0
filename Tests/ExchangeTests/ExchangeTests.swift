import Optimizers
import Testing
import VariableScopes

@testable import Exchange

@Suite("Local exchange")
struct ExchangeTests {
    @Test("training in one process applies the shared optimizer to each variable from its own gradient buffer")
    func local() throws {
        let g = Graph(seed: 1)
        let a = try g.getVariable("a", shape: [2], initializer: .constant(1))
        let b = try g.getVariable("b", shape: [1], initializer: .constant(-1))
        let exchange = LocalExchange(optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.5))
        #expect(try exchange.start(variables: [a, b]) == 0)  // nothing to resume in one process
        a.gradient[0] = 2
        a.gradient[1] = -2
        b.gradient[0] = 4
        try exchange.exchange(step: 1, variables: [a, b])
        #expect(Array(a.value) == [0, 2] && Array(b.value) == [-3])
        try exchange.finish(variables: [a, b])
    }
}
