/// The sizes of the seq2seq forecaster. Every one is an option of `worker`.
public struct ModelConfig: Equatable, Sendable, Codable {
    /// B: examples per step.
    public var batch: Int
    /// T: encoder steps (observed values per window).
    public var window: Int
    /// H: decoder steps (values forecast per window).
    public var horizon: Int
    /// D: input features per step.
    public var inputDim: Int
    /// N: LSTM units.
    public var hidden: Int
    /// M: attentional hidden size (the seed's `hidden_size2`).
    public var hidden2: Int

    public init(
        batch: Int = 32, window: Int = 24, horizon: Int = 12, inputDim: Int = 1, hidden: Int = 64, hidden2: Int = 64
    ) {
        self.batch = batch
        self.window = window
        self.horizon = horizon
        self.inputDim = inputDim
        self.hidden = hidden
        self.hidden2 = hidden2
    }

    /// Roughly the bytes of activations the unrolled graph keeps for `batch` examples: per example and step,
    /// the LSTM's gates and states (12 N floats) and the attention's (4 M). Each size alone is bounded; this
    /// bounds their product before anything is allocated.
    public func activationBytes(batch: Int) -> Double {
        // In Double throughout: the function is public, and Int products of unchecked sizes could trap.
        (Double(window) + Double(horizon)) * Double(batch) * (12 * Double(hidden) + 4 * Double(hidden2)) * 4
    }

    /// The most activations a worker or a reader builds: 16 GB, a fraction of any machine that trains this.
    public static let activationLimit = 16e9
}

/// How the decoder's dense weights are made: the seed's fixed form shares them with `getVariable`;
/// its original form makes new ones with `variable(...)` at every step, as `tf.Variable` did.
public enum DenseVariableForm: String, Sendable, CaseIterable {
    case getVariable
    case variable
}

extension ModelConfig {
    /// The model's trainable variables' shapes, in creation order, without building it: what a worker needs
    /// to size a partitioning for its servers before it makes hundreds of megabytes of variables.
    public var variableShapes: [[Int]] {
        let (D, N, M) = (inputDim, hidden, hidden2)
        return [[D + N, 4 * N], [4 * N], [M + N, 4 * N], [4 * N], [2 * N, M], [1, M], [M, 1]]
    }

    /// Float32 bytes of all trainable variables.
    public var parameterBytes: Int { variableShapes.reduce(0) { $0 + $1.reduce(1, *) } * 4 }
}
