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
    /// - Parameter partitioner: splits every variable as an outer `variable_scope(partitioner=...)` does in
    ///   TensorFlow: the names gain `/part_<i>`, the model reads each whole, and the parts are what is
    ///   trained, placed on servers and saved.
    public convenience init(
        _ config: ModelConfig, graph: Graph = Graph(), form: DenseVariableForm = .getVariable, partitioner: Partitioner? = nil
    ) throws {
        try self.init(config, graph: graph, form: form, kernelScopeForStep: nil, stepByStep: false, partitioner: partitioner)
    }

    /// - Parameter kernelScopeForStep: for tests only: wraps decoder step t's LSTM in its own `.auto`
    ///   scope so that each step gets its own kernel copy and its gradient is that step's alone.
    /// - Parameter stepByStep: for tests only: builds the step-by-step graph even when every weight is
    ///   shared, as the reference for the whole-sequence ops.
    init(
        _ config: ModelConfig, graph: Graph, form: DenseVariableForm = .getVariable,
        kernelScopeForStep: ((Int) -> String)?, stepByStep: Bool = false, partitioner: Partitioner? = nil
    ) throws {
        self.config = config
        self.graph = graph
        let tape = Tape()
        self.tape = tape
        let x = tape.placeholder([config.batch, config.window, config.inputDim])
        self.x = x
        y = tape.placeholder([config.batch, config.horizon])
        let cell = LSTMCell(units: config.hidden)

        // The root scope re-entered with the partitioner (TF's `variable_scope(get_variable_scope(),
        // partitioner=p)`): names are unchanged but for the parts' suffixes.
        (predictions, attention) = try graph.variableScope(graph.currentVariableScope, partitioner: partitioner) { _ in
            if kernelScopeForStep == nil && form == .getVariable && !stepByStep {
                return try Seq2Seq.buildShared(graph, tape, config, x: x, cell: cell)
            }
            return try Seq2Seq.buildStepByStep(
                graph, tape, config, x: x, cell: cell, form: form, kernelScopeForStep: kernelScopeForStep)
        }
        loss = tape.meanSquaredError(predictions, y)
    }

    /// Every weight shared by every step (the seed's fixed form): the variables are got step by step under
    /// the same scopes and reuse flags as the step-by-step graph (so names, order, reuse errors and
    /// warnings are TensorFlow's), then the encoder and the decoder each run as one whole-sequence op.
    static func buildShared(_ graph: Graph, _ tape: Tape, _ config: ModelConfig, x: Node, cell: LSTMCell) throws -> (
        Node, [Node]
    ) {
        let (T, H, D, N, M) = (config.window, config.horizon, config.inputDim, config.hidden, config.hidden2)
        var encoderWeights: [(kernel: Variable, bias: Variable)] = []
        try graph.variableScope("encoder") { _ in
            try graph.variableScope("rnn") { rnn in
                for t in 0..<T {
                    if t > 0 { rnn.reuseVariables() }
                    encoderWeights.append(try cell.variables(graph, inputSize: D))
                }
            }
        }
        let (ek, eb) = encoderWeights[0]
        precondition(encoderWeights.allSatisfy { $0.kernel === ek && $0.bias === eb }, "encoder steps share weights")
        let encoder = tape.lstmSequence(x, kernel: tape.read(ek), bias: tape.read(eb), forgetBias: cell.forgetBias)

        var decoderWeights: [[Variable]] = []
        for t in 0..<H {
            try graph.variableScope("lstm_cell_decoder", reuse: t > 0) { _ in
                let (k, b) = try graph.variableScope("rnn") { _ in try cell.variables(graph, inputSize: M) }
                let (wTilde, bTilde, wTarget) = try Seq2Seq.denseVariables(graph, N: N, M: M, form: .getVariable)
                decoderWeights.append([k, b, wTilde, bTilde, wTarget])
            }
        }
        let shared = decoderWeights[0]
        precondition(
            decoderWeights.allSatisfy { zip($0, shared).allSatisfy { $0 === $1 } }, "decoder steps share weights")
        let decoder = tape.attentionDecoder(
            encoder, horizon: H, kernel: tape.read(shared[0]), bias: tape.read(shared[1]),
            wTilde: tape.read(shared[2]), bTilde: tape.read(shared[3]), wTarget: tape.read(shared[4]),
            forgetBias: cell.forgetBias)
        return (decoder.predictions, decoder.attention)
    }

    /// The step-by-step graph: one op per step's concatenation, affine map, gates, attention and dense
    /// layers. Used when steps can have their own weights (the seed's original `.variable` form, or
    /// per-step kernels in tests).
    static func buildStepByStep(
        _ graph: Graph, _ tape: Tape, _ config: ModelConfig, x: Node, cell: LSTMCell, form: DenseVariableForm,
        kernelScopeForStep: ((Int) -> String)?
    ) throws -> (Node, [Node]) {
        let (B, T, H, N, M) = (config.batch, config.window, config.horizon, config.hidden, config.hidden2)
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
        return (tape.concatColumns(columns), attention)
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
