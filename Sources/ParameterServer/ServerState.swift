import Wire

/// Everything a server needs to resume: variables with their optimizer slots, the update counters, and
/// what each worker last pushed (so a re-sent push is still recognised after a restart).
public struct ServerState: Sendable, Equatable {
    public var variables: [SavedVariable]
    /// Updates applied in all.
    public var updates: UInt64
    /// Sync: steps completed (pulls for step k + 1 wait for step k).
    public var syncStep: UInt64
    public var numWorkers: Int?
    /// The job's data scaling, when a worker named one.
    public var scaling: String?
    /// How the job partitions its variables (`Hello.partitioning`).
    public var partitioning: String?
    /// Where this server stands in the workers' `--ps` lists (`Hello.placement`).
    public var placement: String?
    /// The job's model description (`Hello.model`), recorded verbatim for readers of checkpoints.
    public var model: String?
    public var workers: [SavedWorker]

    public init(
        variables: [SavedVariable], updates: UInt64, syncStep: UInt64, numWorkers: Int?, scaling: String? = nil,
        partitioning: String? = nil, placement: String? = nil, workers: [SavedWorker], model: String? = nil
    ) {
        self.placement = placement
        self.partitioning = partitioning
        self.model = model
        self.scaling = scaling
        self.variables = variables
        self.updates = updates
        self.syncStep = syncStep
        self.numWorkers = numWorkers
        self.workers = workers
    }
}

public struct SavedVariable: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: String
    public var value: [Float]
    public var first: [Float]
    public var second: [Float]
    public var step: Int
    public var registeredBy: String
    /// For a part of a partitioned variable: where it lies in the whole.
    public var slice: SliceSpec?

    public init(
        name: String, shape: [Int], dtype: String, value: [Float], first: [Float], second: [Float], step: Int,
        registeredBy: String, slice: SliceSpec? = nil
    ) {
        self.slice = slice
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.value = value
        self.first = first
        self.second = second
        self.step = step
        self.registeredBy = registeredBy
    }
}

/// A worker's dedupe record: its incarnation, the last push applied from it, and the last step it pushed.
public struct SavedWorker: Codable, Sendable, Equatable {
    public var index: UInt32
    public var incarnation: UInt64
    public var lastPushRequest: UInt64
    public var lastPushedStep: UInt64
    public var done: Bool

    public init(index: UInt32, incarnation: UInt64, lastPushRequest: UInt64, lastPushedStep: UInt64, done: Bool) {
        self.index = index
        self.incarnation = incarnation
        self.lastPushRequest = lastPushRequest
        self.lastPushedStep = lastPushedStep
        self.done = done
    }
}
