import Foundation
import Logging
import ProcessSupport
import VariableScopes
import Wire
import WorkerRuntime
import ZeroMQ

/// One measured point: N simulated workers against P servers, in one mode, with one model.
public struct LoadRunSettings: Sendable {
    public var model: LoadModel
    public var mode: SyncMode
    public var workers: Int
    /// Servers to start (ignored with `external`).
    public var servers: Int
    /// Servers already running (`--ps`), with their process ids for /proc when known.
    public var external: [String]?
    public var externalPIDs: [Int32]?
    /// The `ps-server` executable to start.
    public var serverBinary: String
    /// Seconds of stepping before the window opens (connections warm, allocations done).
    public var warmup: Double = 1
    /// Seconds measured.
    public var window: Double = 3
    /// Seconds all workers together may take to join (hello, register, the first pull).
    public var joinTimeout: Double = 120
    /// Seconds a live server may take to answer one request (`RemoteSettings.timeout`).
    public var requestTimeout: Double = 60
    /// Seconds without a word from a server before a worker counts it lost and reconnects
    /// (`RemoteSettings.lostAfter`, 4 s in a real worker). Longer here: a server serving sixteen 59 MB pushes
    /// in turn is busy, not gone, and a reconnect would measure recovery instead of capacity.
    public var lostAfter: Double = 60
    /// The graph seed every worker and server makes the variables from.
    public var seed: UInt64 = 1
    /// Send each worker's heartbeats as real workers do (a thread and a connection per server each).
    public var heartbeats = false
    /// Where the servers' port files and logs go.
    public var directory: URL
    /// More `ps-server` arguments.
    public var serverArguments: [String] = []
    /// Environment variables for the servers only.
    public var serverEnvironment: [String: String] = [:]
    /// A free-text tag for the CSV (`label` column), say the variant a point measures.
    public var label = ""

    public init(model: LoadModel, mode: SyncMode, workers: Int, servers: Int, serverBinary: String, directory: URL) {
        self.model = model
        self.mode = mode
        self.workers = workers
        self.servers = servers
        self.serverBinary = serverBinary
        self.directory = directory
    }
}

/// Drives one run and measures it: builds every worker's variables, starts the servers, joins the workers,
/// lets them step for `warmup`, then measures `window` seconds (steps, push latencies, the servers' CPU and
/// memory from /proc), stops the workers (each says done, so the servers exit on their own) and stops
/// whatever is left. Every wait is bounded, and the servers are stopped however the run ends.
public final class LoadRun: @unchecked Sendable {
    public let settings: LoadRunSettings
    let control = RunControl()
    let logger: Logger

    /// - Parameter logger: for the simulated workers' warnings (a server lost, a refused push).
    public init(_ settings: LoadRunSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Stops the run early (a signal): workers stop at their next step, servers are stopped.
    public func interrupt() { control.interrupt() }

    /// Runs the point.
    /// - Parameter progress: told what is happening, a line at a time.
    /// - Throws: `LoadError` (`.interrupted` after a signal; `.workerFailed` naming the first failure).
    public func run(progress: (String) -> Void = { _ in }) throws -> LoadResult {
        let s = settings
        let serverCount = s.external?.count ?? s.servers
        let socketsPerWorker = serverCount * (s.heartbeats ? 2 : 1)
        let files = 3 * s.workers * socketsPerWorker + 256
        if FileLimit.raise(toAtLeast: files) < files {
            throw LoadError.fileLimit(needed: files, hardLimit: FileLimit.limits.hard)
        }

        progress("building \(s.workers) workers' variables: \(s.model)")
        let workers = try buildWorkers()
        let fleet: ServerFleet
        if let external = s.external {
            fleet = try ServerFleet(external: external, pids: s.externalPIDs)
        } else {
            var f = FleetSettings(
                binary: s.serverBinary, servers: s.servers, mode: s.mode, workers: s.workers, directory: s.directory)
            f.extraArguments = s.serverArguments
            f.environment = s.serverEnvironment
            fleet = try ServerFleet(starting: f)
        }
        defer { fleet.stop() }
        progress(
            "servers at \(fleet.endpoints.joined(separator: ","))"
                + (fleet.pids.map { " (pids \($0.map(String.init).joined(separator: ",")))" } ?? ""))

        // libzmq's default limit is 1,023 sockets per context.
        let perContext = 768
        let contexts = try (0..<max(1, (s.workers * socketsPerWorker + perContext - 1) / perContext)).map { _ in
            try Context()
        }
        let placement = Placement(variables: workers[0].variables, servers: serverCount)
        for w in workers {
            var remote = RemoteSettings(taskIndex: w.index, numWorkers: s.workers, seed: s.seed)
            remote.timeout = s.requestTimeout
            remote.recoveryTimeout = 10
            remote.lostAfter = s.lostAfter
            let context = contexts[(w.index * socketsPerWorker) / perContext]
            w.start(
                servers: fleet.endpoints, context: context, heartbeats: s.heartbeats, settings: remote,
                control: control, logger: logger)
        }

        let joinDeadline = Date().addingTimeInterval(s.joinTimeout)
        control.wait(until: joinDeadline) { $0.joined == s.workers || $0.stopping }
        try checkFailures(workers: workers, fleet: fleet)
        let joined = control.now.joined
        if joined < s.workers {
            control.stop()
            // Those that never joined wait on a hello for --timeout: not worth waiting out before saying so
            // (the process exits and takes their sockets with it).
            waitForWorkers(s.workers, seconds: 2)
            throw LoadError.joinTimedOut(joined: joined, of: s.workers, seconds: s.joinTimeout)
        }
        progress("\(s.workers) workers joined; warming up for \(s.warmup) s")
        control.pause(seconds: s.warmup)
        let before = Sample(fleet)
        progress("measuring for \(s.window) s")
        control.pause(seconds: s.window)
        let after = Sample(fleet)
        let memory = fleet.pids?.map { ProcStat.memory(pid: $0) }
        control.stop()
        waitForWorkers(s.workers)
        try checkFailures(workers: workers, fleet: fleet)
        if !fleet.waitForExit(seconds: 10) && s.external == nil {
            logger.warning("servers did not exit within 10 s of every worker saying done; stopping them")
        }

        return LoadResult(
            settings: s, serverCount: serverCount, endpoints: fleet.endpoints, placementLoad: placement.load,
            workers: workers, before: before, after: after, memory: memory)
    }

    private func buildWorkers() throws -> [SimulatedWorker] {
        let n = settings.workers
        let built = Built(count: n)
        let model = settings.model
        let seed = settings.seed
        DispatchQueue.concurrentPerform(iterations: min(n, ProcStat.cores)) { lane in
            for i in stride(from: lane, to: n, by: min(n, ProcStat.cores)) {
                built.set(i, Result { try model.build(seed: seed) })
            }
        }
        return try (0..<n).map { i in SimulatedWorker(index: i, variables: try built.get(i)) }
    }

    /// Waits (bounded: `seconds`, by default a request's timeout and 15 s) for every worker thread to end,
    /// each after saying done to the servers.
    private func waitForWorkers(_ n: Int, seconds: Double? = nil) {
        let deadline = Date().addingTimeInterval(seconds ?? settings.requestTimeout + 15)
        if !control.wait(until: deadline, { $0.finished == n }) {
            logger.warning("\(n - control.now.finished) simulated workers did not finish; the servers will be stopped")
        }
    }

    private func checkFailures(workers: [SimulatedWorker], fleet: ServerFleet) throws {
        if control.now.interrupted {
            control.stop()
            waitForWorkers(workers.count)
            throw LoadError.interrupted
        }
        if let first = control.now.failures.first {
            control.stop()
            waitForWorkers(workers.count)
            let tails = fleet.logTails().enumerated().map { "--- ps-\($0.offset)\n\($0.element)" }.joined(
                separator: "\n")
            throw LoadError.workerFailed(
                index: first.index, message: first.message + (tails.isEmpty ? "" : "\n" + tails))
        }
    }
}

/// Each worker's variables, built on several threads at once.
private final class Built: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[Variable], Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<[Variable], Error>) {
        lock.lock()
        slots[i] = r
        lock.unlock()
    }
    func get(_ i: Int) throws -> [Variable] {
        lock.lock()
        defer { lock.unlock() }
        return try slots[i]!.get()
    }
}

/// CPU readings at one instant: each server's, this process's and the machine's.
struct Sample {
    let at: Double
    let serverCPU: [ProcStat.Times?]
    let ownCPU: Double?
    let machineBusy: Double?

    init(_ fleet: ServerFleet) {
        at = MonotonicClock.now()
        serverCPU = fleet.pids?.map { ProcStat.times(pid: $0) } ?? fleet.endpoints.map { _ in nil }
        ownCPU = ProcStat.cpuSeconds(pid: getpid())
        machineBusy = ProcStat.machine()?.busy
    }
}
