import Tensors

/// The reuse mode of a variable scope (TF1's `reuse=` argument).
public enum Reuse: Sendable, Equatable {
    /// Not given (or `false`): take the parent's mode. `false` cannot switch reuse off inside a reusing scope.
    case inherit
    /// `reuse=True`: `getVariable` must find an existing variable.
    case reuse
    /// `tf.AUTO_REUSE`: share if it exists, create otherwise.
    case auto
}

/// The effective mode of an open scope.
public enum ReuseMode: Sendable, Equatable {
    case create, reuse, auto
}

/// A variable scope: the name `getVariable` prefixes, its reuse mode and defaults.
///
/// Capture one (`variableScope("enc") { scope in ... }`) to re-enter it later by object: re-entry uses
/// its absolute name wherever you are, as `tf.variable_scope(scope)` does.
public final class VariableScope: CustomStringConvertible {
    /// Full variable-scope name, e.g. `lstm_cell_decoder/rnn`; empty at the root.
    public let name: String
    /// Mode in force; `reuseVariables()` switches it to `.reuse`.
    public internal(set) var reuse: ReuseMode
    public let initializer: Initializer?
    public let partitioner: Partitioner?
    public let dtype: DType
    /// The name scope opened when this scope was entered, with a trailing `/` (`lstm_cell_decoder_1/`).
    public let originalNameScope: String
    /// How many times a scope of this name had been entered before this entry (0 for the first).
    public let priorEntries: Int

    init(
        name: String, reuse: ReuseMode, initializer: Initializer?, partitioner: Partitioner?,
        dtype: DType, originalNameScope: String, priorEntries: Int
    ) {
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.partitioner = partitioner
        self.dtype = dtype
        self.originalNameScope = originalNameScope
        self.priorEntries = priorEntries
    }

    /// Puts this scope in reuse mode from now on (TF's `scope.reuse_variables()`).
    public func reuseVariables() { reuse = .reuse }

    public var description: String { name.isEmpty ? "<root>" : name }
}
