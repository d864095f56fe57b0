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
