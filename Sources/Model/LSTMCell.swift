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
        let inputSize = input.shape[1]
        let (kernel, bias) = try graph.variableScope("lstm_cell") { _ in
            (
                try graph.getVariable("kernel", shape: [inputSize + units, 4 * units]),
                try graph.getVariable("bias", shape: [4 * units], initializer: .zeros)
            )
        }
        let z = tape.affine(tape.concatColumns([input, state.h]), tape.read(kernel), tape.read(bias))
        // c = σ(f + 1)·c_prev + σ(i)·tanh(j); h = σ(o)·tanh(c), fused into one op.
        let ch = tape.lstmGates(z, state.c, forgetBias: forgetBias)
        return State(
            c: tape.sliceColumns(ch, start: 0, width: units), h: tape.sliceColumns(ch, start: units, width: units))
    }
}
