import Optimizers
import Wire

/// The rules a parameter server runs by; every field is a `ps-server` option.
public struct ServerConfig: Sendable {
    /// Names this server in logs, errors and its checkpoint files.
    public var name: String
    public var mode: SyncMode
    /// Async only: a worker may run at most this many steps ahead of the slowest active worker.
    public var staleness: Int?
    public var optimizer: OptimizerConfig
    /// Sync only: a step is applied once all but this many active workers have pushed it.
    public var backupWorkers: Int = 0
    /// The job's worker count, when the server is told it (`--num-workers`, `TF_CONFIG`); otherwise the
    /// first hello fixes it.
    public var numWorkers: Int?
    /// Seconds of silence after which a worker is declared lost (and no longer waited for).
    public var workerTimeout: Double = 30
    /// Seconds of silence after which a new process may take over a task index (a restarted worker).
    /// Workers ping every second while they wait, so a live worker is never silent this long.
    public var takeoverAfter: Double = 3
    /// Write a checkpoint every this many applied updates (nil: not by count).
    public var checkpointEvery: Int?
    /// Write a checkpoint when this many seconds passed since the last one and something changed.
    public var checkpointSeconds: Double? = 60
    /// Keep serving after every worker is done or lost.
    public var keepServing = false
    /// Clip each push's gradient to this global norm (over the variables on this server), as
    /// `tf.clip_by_global_norm` does.
    public var clipNorm: Float?
    public var limits = ServerLimits()
    /// The tensor encodings this server takes (`--wire-dtypes`).
    public var wireDTypes: Set<WireDType> = [.float32, .bf16]

    public init(name: String, mode: SyncMode = .async, staleness: Int? = nil, optimizer: OptimizerConfig = .init()) {
        self.name = name
        self.mode = mode
        self.staleness = staleness
        self.optimizer = optimizer
    }
}

/// Bounds on what any one peer can make a server hold or do. Every number from the wire is checked
/// against these (overflow-safe) before it is used.
public struct ServerLimits: Sendable, Equatable {
    /// Elements in one variable (`--max-variable-elements`): 64 Mi, 256 MB of float32, so that the largest
    /// kernel of a `--hidden 2048 --hidden2 2048` model (33.5 M elements) fits unpartitioned.
    public var maxVariableElements = 64 << 20
    /// Bytes of variables and optimizer slots held in all (`--max-total-bytes`).
    public var maxTotalBytes = 2 << 30
    /// Variables on this server (`--max-variables`).
    public var maxVariables = 4096
    /// Names in one request (`--max-names-per-request`).
    public var maxNamesPerRequest = 4096
    /// Workers in one job (`--max-workers`).
    public var maxWorkers = 1024
    /// Dimensions of one shape.
    public var maxRank = 8
    /// Characters in a variable name.
    public var maxNameLength = 1024
    /// Pulls one worker may have waiting at once.
    public var maxDeferredPerWorker = 4
    /// The largest frame the transport takes (`--max-message-bytes`), told to packing workers so that they
    /// never pack more into one frame.
    public var maxFrameBytes = 256 << 20

    public init() {}
}
