import Autodiff
import VariableScopes

/// The seed's forecaster: an LSTM encoder and an LSTM decoder with Luong et al. (2015) dot-product
/// attention and input feeding, unrolled over the window and the horizon (`spec/model.md`).
///
/// The decoder loop reads as the seed's fixed code: `variableScope("lstm_cell_decoder", reuse: t > 0)`
/// around each step, so every timestep uses one LSTM weight set and its gradients add up in one buffer.
public final class Seq2Seq {
    public let config: ModelConfig
    public let graph: Graph
    public let tape: Tape
    /// Feeds: inputs [B, T, D] and targets [B, H].
    public let x: Node
    public let y: Node
    /// Outputs: predictions [B, H], attention weights per decoder step ([B, T] each), loss [1].
    public let predictions: Node
    public let attention: [Node]
    public let loss: Node

    /// Builds the model's variables in `graph` and its unrolled computation in a new tape.
    /// - Parameter form: `.getVariable` (shared dense weights, 7 variables) or `.variable` (the seed's
    ///   original bug: new dense weights at every decoder step).
    public convenience init(_ config: ModelConfig, graph: Graph = Graph(), form: DenseVariableForm = .getVariable)
        throws
    {
        try self.init(config, graph: graph, form: form, kernelScopeForStep: nil)
    }

    /// - Parameter kernelScopeForStep: for tests only: wraps decoder step t's LSTM in its own `.auto`
    ///   scope so that each step gets its own kernel copy and its gradient is that step's alone.
    init(
        _ config: ModelConfig, graph: Graph, form: DenseVariableForm = .getVariable,
        kernelScopeForStep: ((Int) -> String)?
    ) throws {
        self.config = config
        self.graph = graph
        let tape = Tape()
        self.tape = tape
        let (B, T, H, D, N, M) = (
            config.batch, config.window, config.horizon, config.inputDim, config.hidden, config.hidden2
        )
        let x = tape.placeholder([B, T, D])
        self.x = x
        y = tape.placeholder([B, H])
        let cell = LSTMCell(units: N)

        // Encoder: static_rnn under "encoder", reusing the cell's variables after the first step.
        var state = LSTMCell.State(c: tape.constant(0, shape: [B, N]), h: tape.constant(0, shape: [B, N]))
        var outputs: [Node] = []
        try graph.variableScope("encoder") { _ in
            try graph.variableScope("rnn") { rnn in
                for t in 0..<T {
                    if t > 0 { rnn.reuseVariables() }
                    state = try cell.step(graph, tape, input: tape.selectStep(x, t), state: state)
                    outputs.append(state.h)
                }
            }
        }
        let memory = tape.stackSteps(outputs)  // [B, T, N]

        var input = tape.constant(0, shape: [B, M])
        var columns: [Node] = []
        var attention: [Node] = []
        for t in 0..<H {
            try graph.variableScope("lstm_cell_decoder", reuse: t > 0) { _ in
                state = try graph.variableScope("rnn") { _ in
                    guard let perStep = kernelScopeForStep else {
                        return try cell.step(graph, tape, input: input, state: state)
                    }
                    return try graph.variableScope(perStep(t), reuse: .auto) { _ in
                        try cell.step(graph, tape, input: input, state: state)
                    }
                }
                let a = tape.softmaxRows(tape.batchDot(memory, state.h))  // [B, T]
                let context = tape.weightedSum(a, memory)  // [B, N]
                let (wTilde, bTilde, wTarget) = try Seq2Seq.denseVariables(graph, N: N, M: M, form: form)
                let hTilde = tape.tanh(
                    tape.affine(tape.concatColumns([context, state.h]), tape.read(wTilde), tape.read(bTilde)))
                columns.append(tape.matmul(hTilde, tape.read(wTarget)))  // [B, 1]
                attention.append(a)
                input = hTilde  // input feeding
            }
        }
        predictions = tape.concatColumns(columns)
        self.attention = attention
        loss = tape.meanSquaredError(predictions, y)
    }

    /// `weights_tilde [2N, M]`, `bias_tilde [1, M]`, `weights_target [M, 1]` in the current scope.
    static func denseVariables(_ g: Graph, N: Int, M: Int, form: DenseVariableForm) throws -> (
        Variable, Variable, Variable
    ) {
        switch form {
        case .getVariable:
            return (
                try g.getVariable("weights_tilde", shape: [2 * N, M], initializer: .normal(stddev: 0.1)),
                try g.getVariable("bias_tilde", shape: [1, M], initializer: .zeros),
                try g.getVariable("weights_target", shape: [M, 1], initializer: .normal(stddev: 0.1))
            )
        case .variable:
            return (
                try g.variable(shape: [2 * N, M], initializer: .normal(stddev: 0.1), name: "weights_tilde"),
                try g.variable(shape: [1, M], initializer: .zeros, name: "bias_tilde"),
                try g.variable(shape: [M, 1], initializer: .normal(stddev: 0.1), name: "weights_target")
            )
        }
    }

    /// The trainable variables, in creation order.
    public var variables: [Variable] { graph.trainableVariables }

    /// Runs the model forward on the current feeds and returns the loss.
    @discardableResult
    public func forward() -> Float {
        tape.forward()
        return loss.value[0]
    }

    /// Forward and backward: fills every variable's gradient buffer and returns the loss.
    @discardableResult
    public func forwardBackward() -> Float {
        tape.forward()
        tape.backward(from: loss)
        return loss.value[0]
    }
}
