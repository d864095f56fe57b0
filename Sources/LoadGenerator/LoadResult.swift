import Foundation
import Wire

/// What one run measured, and its CSV rows: one per server.
public struct LoadResult: Sendable {
    public let mode: SyncMode
    public let model: LoadModel
    /// Simulated workers (N) and servers (P).
    public let workers: Int
    public let servers: Int
    /// The window's length as measured, seconds.
    public let window: Double
    /// Exchanges (a push and a pull to every server) completed in the window, all workers together.
    public let steps: Int
    /// Push→acknowledgement latencies in the window, seconds, sorted.
    public let latencies: [Double]
    /// Float32 parameters placed on each server.
    public let serverParameters: [Int]
    /// CPU seconds (user + system) each server used in the window; nil where /proc could not be read.
    public let serverCPU: [Double?]
    /// The kernel's part of each server's CPU seconds (system time: TCP copies, page faults).
    public let serverSystemCPU: [Double?]
    /// Minor page faults each server took in the window.
    public let serverFaults: [Double?]
    /// Resident and peak resident bytes of each server at the window's end.
    public let serverMemory: [(rss: Int, peak: Int)?]
    /// CPU seconds this process (the simulated workers and their ZeroMQ threads) used in the window.
    public let clientCPU: Double?
    /// CPU seconds the whole machine was busy in the window, all cores.
    public let machineBusy: Double?
    /// Bytes one worker moved per step (push and pull, every server).
    public let bytesPerStep: Double
    /// Cores online: the machine the run shared.
    public let cores: Int
    /// The run's free-text tag.
    public var label = ""

    init(
        settings s: LoadRunSettings, serverCount: Int, endpoints: [String], placementLoad: [Int],
        workers: [SimulatedWorker],
        before: Sample, after: Sample, memory: [(rss: Int, peak: Int)?]?
    ) {
        mode = s.mode
        model = s.model
        self.workers = s.workers
        servers = serverCount
        let t0 = before.at
        let t1 = after.at
        window = t1 - t0
        steps = workers.reduce(0) { n, w in n + w.stepEnds.reduce(0) { $0 + ($1 > t0 && $1 <= t1 ? 1 : 0) } }
        latencies = workers.flatMap { w in w.pushLatencies.filter { $0.at > t0 && $0.at <= t1 }.map(\.seconds) }
            .sorted()
        serverParameters = placementLoad.map { $0 / 4 }
        let deltas = zip(before.serverCPU, after.serverCPU).map { b, a -> ProcStat.Times? in
            guard let b, let a else { return nil }
            return ProcStat.Times(
                user: a.user - b.user, system: a.system - b.system, minorFaults: a.minorFaults - b.minorFaults)
        }
        serverCPU = deltas.map { $0?.total }
        serverSystemCPU = deltas.map { $0?.system }
        serverFaults = deltas.map { $0?.minorFaults }
        serverMemory = memory ?? Array(repeating: nil, count: serverCount)
        clientCPU = before.ownCPU.flatMap { b in after.ownCPU.map { $0 - b } }
        machineBusy = before.machineBusy.flatMap { b in after.machineBusy.map { $0 - b } }
        bytesPerStep = workers.map(\.bytesPerStep).max() ?? 0
        cores = ProcStat.cores
        label = s.label
    }

    /// Builds a result from its parts (tests, and re-reading).
    public init(
        mode: SyncMode, model: LoadModel, workers: Int, servers: Int, window: Double, steps: Int, latencies: [Double],
        serverParameters: [Int], serverCPU: [Double?], serverMemory: [(rss: Int, peak: Int)?], clientCPU: Double?,
        machineBusy: Double?, bytesPerStep: Double, cores: Int
    ) {
        self.mode = mode
        self.model = model
        self.workers = workers
        self.servers = servers
        self.window = window
        self.steps = steps
        self.latencies = latencies.sorted()
        self.serverParameters = serverParameters
        self.serverCPU = serverCPU
        serverSystemCPU = serverCPU.map { _ in nil }
        serverFaults = serverCPU.map { _ in nil }
        self.serverMemory = serverMemory
        self.clientCPU = clientCPU
        self.machineBusy = machineBusy
        self.bytesPerStep = bytesPerStep
        self.cores = cores
    }

    /// Pushes each server took in the window: every step pushes to every server.
    public var pushesPerServer: Int { steps }

    /// Updates each server applied: every push in async; one averaged step per N pushes in sync.
    public var updatesPerServer: Double { mode == .async ? Double(steps) : Double(steps) / Double(max(1, workers)) }

    /// The q-quantile (0...1) of the push latencies, nearest rank; nil with no samples.
    public func latency(quantile q: Double) -> Double? { Self.quantile(latencies, q) }

    /// Nearest-rank quantile of sorted values.
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    /// The CSV columns, in order.
    public static let columns = [
        "mode", "hidden", "parameters", "parts", "servers", "server", "workers", "window_s", "server_parameters",
        "pushes", "updates", "pushes_per_s", "updates_per_s", "grad_bytes_per_s", "step_ms", "bytes_per_step",
        "cpu_s", "cpu_util", "cpu_ms_per_push", "cpu_ms_per_update", "push_p50_ms", "push_p99_ms", "latency_samples",
        "rss_mb", "hwm_mb", "adam_bytes_per_s", "triad_bytes_per_s", "apply_fraction", "client_cpu_util",
        "other_cpu_util", "cores", "cpu_sys_share", "faults_per_update", "label",
    ]

    /// The header line of the CSV.
    public static var csvHeader: String { columns.joined(separator: ",") }

    /// One line per server.
    /// - Parameter triad: this machine's single-thread triad bandwidth, bytes/s, for `apply_fraction`.
    public func csvRows(triad: Double?) -> [String] {
        func f(_ x: Double?, _ digits: Int = 3) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "" }
        let w = max(window, 1e-9)
        let pushesPerS = Double(pushesPerServer) / w
        let updatesPerS = updatesPerServer / w
        let stepMS = steps > 0 ? 1000 * w * Double(workers) / Double(steps) : nil
        let ours = (serverCPU.compactMap { $0 }.reduce(0, +)) + (clientCPU ?? 0)
        let other = machineBusy.map { max(0, $0 - ours) / (w * Double(cores)) }
        return (0..<servers).map { i in
            let params = serverParameters[i]
            let cpu = serverCPU[i]
            let adam = updatesPerS * Double(params) * Double(MemoryBandwidth.adamBytesPerParameter)
            let mem = serverMemory[i]
            let values: [String] = [
                mode.rawValue, "\(model.hidden)", "\(model.parameterCount)", "\(model.parts)", "\(servers)", "\(i)",
                "\(workers)", f(window), "\(params)", "\(pushesPerServer)", f(updatesPerServer, 1), f(pushesPerS, 1),
                f(updatesPerS, 1), f(pushesPerS * Double(params) * 4, 0), f(stepMS), f(bytesPerStep, 0), f(cpu),
                f(cpu.map { $0 / w }),
                f(cpu.flatMap { pushesPerServer > 0 ? 1000 * $0 / Double(pushesPerServer) : nil }, 4),
                f(cpu.flatMap { updatesPerServer > 0 ? 1000 * $0 / updatesPerServer : nil }, 4),
                f(latency(quantile: 0.5).map { $0 * 1000 }), f(latency(quantile: 0.99).map { $0 * 1000 }),
                "\(latencies.count)",
                f(mem.map { Double($0.rss) / 1e6 }, 1), f(mem.map { Double($0.peak) / 1e6 }, 1), f(adam, 0),
                f(triad, 0),
                f(triad.map { adam / $0 }, 4), f(clientCPU.map { $0 / w }), f(other), "\(cores)",
                f(serverSystemCPU[i].flatMap { sys in cpu.flatMap { $0 > 0 ? sys / $0 : nil } }),
                f(serverFaults[i].flatMap { updatesPerServer > 0 ? $0 / updatesPerServer : nil }, 1),
                label.replacingOccurrences(of: ",", with: ";"),
            ]
            return values.joined(separator: ",")
        }
    }

    /// A short human summary of the run.
    public var summary: String {
        let w = max(window, 1e-9)
        let cpu = serverCPU.compactMap { $0 }
        let perUpdate =
            cpu.isEmpty || updatesPerServer == 0
            ? "?" : String(format: "%.3f", 1000 * cpu.reduce(0, +) / Double(cpu.count) / updatesPerServer)
        return String(
            format:
                "%@ N=%d P=%d %d params: %.0f updates/s per server, %@ ms server CPU per update, push p50 %.2f ms p99 %.2f ms",
            mode.rawValue, workers, servers, model.parameterCount, updatesPerServer / w, perUpdate,
            1000 * (latency(quantile: 0.5) ?? .nan), 1000 * (latency(quantile: 0.99) ?? .nan))
    }
}
