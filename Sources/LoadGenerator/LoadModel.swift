import VariableScopes

/// The variables a simulated worker exchanges: the seed model's seven, at a chosen LSTM width, made with the
/// same TF1 scopes, with gradients filled in once and never computed again.
///
/// With N units and M = N attentional units and one input feature, the seven variables hold
/// 14N² + 14N parameters: 58,240 at N = 64 (the seed), 921,088 at N = 256 and 14,694,400 at N = 1024. The
/// decoder kernel alone is 8N² of them (57%), so without partitioning one server carries at least that.
public struct LoadModel: Sendable, Equatable, CustomStringConvertible {
    /// LSTM units (N) and attentional units (M), equal here.
    public let hidden: Int
    /// Parts per variable (TF's `fixed_size_partitioner` along axis 0); 1 places whole variables.
    public let parts: Int

    /// - Throws: `LoadError.badModel` for a width or a part count that cannot make a model.
    public init(hidden: Int, parts: Int = 1) throws {
        guard (1...4096).contains(hidden) else { throw LoadError.badModel("hidden \(hidden) is outside 1...4096") }
        guard (1...64).contains(parts) else { throw LoadError.badModel("\(parts) parts is outside 1...64") }
        self.hidden = hidden
        self.parts = parts
    }

    /// The grid's three sizes by name: `58k` (the seed), `1m` and `15m`.
    public static func preset(_ name: String) -> Int? {
        switch name.lowercased() {
        case "58k", "seed": return 64
        case "1m": return 256
        case "15m": return 1024
        default: return nil
        }
    }

    /// The (name, shape) of each variable before partitioning, in the model's creation order.
    public var shapes: [(name: String, shape: [Int])] {
        let n = hidden
        return [
            ("encoder/rnn/lstm_cell/kernel", [1 + n, 4 * n]), ("encoder/rnn/lstm_cell/bias", [4 * n]),
            ("lstm_cell_decoder/rnn/lstm_cell/kernel", [2 * n, 4 * n]),
            ("lstm_cell_decoder/rnn/lstm_cell/bias", [4 * n]),
            ("lstm_cell_decoder/weights_tilde", [2 * n, n]), ("lstm_cell_decoder/bias_tilde", [1, n]),
            ("lstm_cell_decoder/weights_target", [n, 1]),
        ]
    }

    /// Parameters in all.
    public var parameterCount: Int { 14 * hidden * hidden + 14 * hidden }

    public var description: String {
        "\(parameterCount) parameters (hidden \(hidden)\(parts > 1 ? ", \(parts) parts each" : ""))"
    }

    /// Builds the variables in a graph of their own, in TF1 scopes (a partitioner on the outer scopes when
    /// `parts > 1`), and fills every gradient buffer with small finite values that the servers apply as they
    /// would any worker's. The values are what the servers would make from `seed`, so registration needs none.
    /// - Returns: the trainable variables as a worker exchanges them (each part a variable of its own).
    public func build(seed: UInt64) throws -> [Variable] {
        let graph = Graph(seed: seed)
        let partitioner = parts > 1 ? Partitioner.fixedSize(parts) : nil
        for (name, shape) in shapes {
            let path = name.split(separator: "/").map(String.init)
            try open(graph, scopes: path.dropLast(), partitioner: partitioner) {
                // Zeros: the values do not change the cost of an update, and 256 workers' Glorot draws would
                // only slow the start.
                try graph.getVariable(path.last!, shape: shape, initializer: .zeros)
            }
        }
        let variables = graph.trainableVariables
        for v in variables {
            for i in 0..<v.count { v.gradient[i] = Float((i % 17) - 8) * 1e-4 }
        }
        return variables
    }

    private func open(
        _ graph: Graph, scopes: ArraySlice<String>, partitioner: Partitioner?, _ body: () throws -> Void
    ) throws {
        guard let first = scopes.first else { return try body() }
        try graph.variableScope(first, partitioner: partitioner) { _ in
            try open(graph, scopes: scopes.dropFirst(), partitioner: nil, body)
        }
    }
}
