import VariableScopes

/// Which server owns which variable: largest first onto the least-loaded server by bytes, ties to the
/// lower server index, like TensorFlow's `GreedyLoadBalancingStrategy` for `replica_device_setter`.
///
/// Every worker computes the same placement from the same variables, so no coordination is needed.
/// Parts of a partitioned variable are variables of their own and spread like any other.
public struct Placement: Equatable, Sendable {
    /// Server index for each variable name.
    public let owner: [String: Int]
    /// Bytes placed on each server.
    public let load: [Int]

    /// - Parameters:
    ///   - variables: (name, bytes) pairs; order does not matter.
    ///   - servers: how many servers there are (at least one).
    public init(_ variables: [(name: String, bytes: Int)], servers: Int) {
        precondition(servers >= 1, "placement needs at least one server")
        var load = [Int](repeating: 0, count: servers)
        var owner: [String: Int] = [:]
        let sorted = variables.sorted { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.name < $1.name }
        for v in sorted {
            let target = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            owner[v.name] = target
            load[target] += v.bytes
        }
        self.owner = owner
        self.load = load
    }

    /// The placement of a graph's trainable variables.
    public init(variables: [Variable], servers: Int) {
        self.init(variables.map { ($0.name, $0.byteCount) }, servers: servers)
    }
}

extension Placement {
    /// `--partitioner auto`: parts of at most 1/8 of one server's fair share along axis 0 (TensorFlow's
    /// variable-axis-size partitioner with that bound), so that greedy placement, which leaves no server
    /// more than one part above the mean, keeps every server within a few percent of it. Variables smaller
    /// than the bound stay whole (one `part_0`); with one server nothing is split.
    /// - Parameters:
    ///   - totalBytes: the model's bytes.
    ///   - servers: how many servers share them.
    public static func autoPartitioner(totalBytes: Int, servers: Int) -> Partitioner? {
        guard servers > 1 else { return nil }
        return .variableAxisSize(maxShardBytes: autoShardBytes(totalBytes: totalBytes, servers: servers))
    }

    /// The largest part `autoPartitioner` makes: an eighth of a server's share, at least 16 KiB (smaller
    /// parts cost more in messages than they gain in balance).
    public static func autoShardBytes(totalBytes: Int, servers: Int) -> Int {
        max(16 << 10, totalBytes / (8 * max(1, servers)))
    }
}
