import Optimizers
import Wire

/// How a parameter server runs; every field is a `ps-server` option.
public struct ServerOptions: Sendable {
    /// Where to bind, e.g. `tcp://127.0.0.1:5556`.
    public var endpoint: String
    /// Names this server in logs, errors and its checkpoint file (`<name>.safetensors`); empty: `ps-<port>`.
    public var name: String
    public var mode: SyncMode
    /// Async only: a worker may run at most this many steps ahead of the slowest active worker.
    public var staleness: Int?
    public var optimizer: OptimizerConfig
    /// Where to write the variables at the end; nil writes nothing.
    public var checkpointDir: String?
    /// Keep serving after every worker said it is done (otherwise exit then).
    public var keepServing: Bool
    /// Larger messages are refused by ZeroMQ itself (the peer is disconnected).
    public var maxMessageBytes: Int64
    /// With a CURVE secret key, only clients that know the matching public key can connect, and traffic is
    /// encrypted (ZeroMQ's CurveZMQ).
    public var curveSecretKey: [UInt8]?

    public init(
        endpoint: String, name: String, mode: SyncMode = .async, staleness: Int? = nil,
        optimizer: OptimizerConfig = OptimizerConfig(), checkpointDir: String? = nil, keepServing: Bool = false,
        maxMessageBytes: Int64 = 256 << 20, curveSecretKey: [UInt8]? = nil
    ) {
        self.curveSecretKey = curveSecretKey
        self.endpoint = endpoint
        self.name = name
        self.mode = mode
        self.staleness = staleness
        self.optimizer = optimizer
        self.checkpointDir = checkpointDir
        self.keepServing = keepServing
        self.maxMessageBytes = maxMessageBytes
    }
}
