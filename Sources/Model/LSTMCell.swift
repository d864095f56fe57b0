import Autodiff
import VariableScopes

/// TF1's `LSTMCell` (Hochreiter & Schmidhuber 1997, with TF's defaults): one fused kernel
/// `[in + N, 4N]` and bias `[4N]` under `rnn/lstm_cell`, gates in the order i, j, f, o, forget bias 1.0.
public struct LSTMCell {
    public let units: Int
    public let forgetBias: Float = 1

    public init(units: Int) { self.units = units }

    /// The cell's state: memory c and output h, each [B, N].
    public struct State {
        public let c: Node
        public let h: Node
    }

    /// One step. Must be called inside the scope that should own `rnn/lstm_cell/{kernel,bias}`;
    /// sharing across calls follows that scope's reuse mode, as in TensorFlow.
    public func step(_ graph: Graph, _ tape: Tape, input: Node, state: State) throws -> State {
        let (kernel, bias) = try variables(graph, inputSize: input.shape[1])
        let z = tape.affine(tape.concatColumns([input, state.h]), tape.read(kernel), tape.read(bias))
        // c = σ(f + 1)·c_prev + σ(i)·tanh(j); h = σ(o)·tanh(c), fused into one op.
        let ch = tape.lstmGates(z, state.c, forgetBias: forgetBias)
        return State(
            c: tape.sliceColumns(ch, start: 0, width: units), h: tape.sliceColumns(ch, start: units, width: units))
    }

    /// The cell's `rnn/lstm_cell/{kernel,bias}` for inputs of `inputSize` features, got in the current
    /// scope exactly as `step` gets them: what a whole-sequence op needs at each step it stands for.
    public func variables(_ graph: Graph, inputSize: Int) throws -> (kernel: Variable, bias: Variable) {
        try graph.variableScope("lstm_cell") { _ in
            (
                try graph.getVariable("kernel", shape: [inputSize + units, 4 * units]),
                try graph.getVariable("bias", shape: [4 * units], initializer: .zeros)
            )
        }
    }
}
