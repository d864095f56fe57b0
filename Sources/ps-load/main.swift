import ArgumentParser
import Foundation
import LoadGenerator
import Logging
import ProcessSupport
import Wire

extension SyncMode: ExpressibleByArgument {}

/// `ps-load`: how far one parameter server goes. N simulated workers (real clients, precomputed gradients,
/// no model compute) drive P real `ps-server` processes on loopback; the servers' throughput, CPU, latency
/// and memory are measured from outside.
struct PSLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps-load",
        abstract: "Measure parameter servers under N simulated workers, and this machine's memory bandwidth.",
        subcommands: [Run.self, Bandwidth.self, Scale.self], defaultSubcommand: Run.self)
}

/// One point of the grid.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive P servers with N simulated workers and print (or append) one CSV row per server.",
        discussion: """
            Servers are started on free loopback ports (or given with --ps) and stopped at the end, also on \
            Ctrl-C. Exit codes: 0 measured, 64 bad usage, 1 the run failed, 130 interrupted.
            """)

    @Option(help: "58k (the seed model), 1m or 15m; --hidden overrides it.") var model = "58k"
    @Option(help: "LSTM width N of the seven-variable model (14N²+14N parameters).") var hidden: Int?
    @Option(help: "sync or async.") var mode: SyncMode = .async
    @Option(name: .shortAndLong, help: "Simulated workers (threads), 1...1024.") var workers = 4
    @Option(name: .shortAndLong, help: "Servers to start.") var servers = 1
    @Flag(help: "Split every variable into one part per server (TF's fixed_size_partitioner along axis 0).")
    var partition = false
    @Option(help: "Use these running servers (host:port,... on loopback) instead of starting any.") var ps: String?
    @Option(help: "With --ps: their process ids (pid,...), for CPU and memory from /proc.") var psPids: String?
    @Option(help: "The ps-server executable (default: beside this one).") var serverBinary: String?
    @Option(help: "Seconds of stepping before measuring.") var warmup = 1.0
    @Option(help: "Seconds measured.") var window = 3.0
    @Option(help: "Seconds all workers may take to join.") var joinTimeout = 120.0
    @Option(help: "Seconds of silence before a worker counts a server lost (a real worker: 4).") var lostAfter = 60.0
    @Flag(help: "Send heartbeats as real workers do (a thread and a connection per server more per worker).")
    var heartbeats = false
    @Option(help: "Single-thread triad bandwidth in bytes/s, for apply_fraction (see `ps-load bandwidth`).")
    var triad: Double?
    @Option(help: "Append the rows to this CSV file (header written if it is new); default standard output.")
    var csv: String?
    @Option(help: "Keep the servers' logs and port files here (default: a temporary folder, removed).")
    var workDir: String?
    @Option(help: "Set KEY=VALUE in the servers' environment only (repeatable), e.g. MALLOC_MMAP_THRESHOLD_=536870912.")
    var serverEnv: [String] = []
    @Option(help: "A tag for the CSV's label column (commas become semicolons).") var label = ""

    func validate() throws {
        if let hidden, !(1...4096).contains(hidden) {
            throw ValidationError("--hidden must be in 1...4096, got \(hidden)")
        }
        guard hidden != nil || LoadModel.preset(model) != nil else {
            throw ValidationError("--model must be 58k, 1m or 15m (or give --hidden), got \(model)")
        }
        guard (1...1024).contains(workers) else {
            throw ValidationError("--workers must be in 1...1024, got \(workers)")
        }
        guard (1...64).contains(servers) else { throw ValidationError("--servers must be in 1...64, got \(servers)") }
        guard warmup >= 0, warmup <= 600 else { throw ValidationError("--warmup must be in 0...600 seconds") }
        guard window > 0, window <= 3600 else { throw ValidationError("--window must be in (0, 3600] seconds") }
        guard joinTimeout > 0 else { throw ValidationError("--join-timeout must be positive") }
        guard lostAfter > 0, lostAfter <= 3600 else {
            throw ValidationError("--lost-after must be in (0, 3600] seconds")
        }
        for e in serverEnv where !e.contains("=") || e.hasPrefix("=") {
            throw ValidationError("--server-env takes KEY=VALUE, got \(e)")
        }
        if psPids != nil && ps == nil { throw ValidationError("--ps-pids goes with --ps") }
        if let t = triad {
            guard t.isFinite, t > 0 else { throw ValidationError("--triad must be a positive number of bytes/s") }
        }
    }

    func run() throws {
        let logger = makeLogger()
        let endpoints = ps.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        let pids = try psPids.map { text in
            try text.split(separator: ",").map { s -> Int32 in
                guard let p = Int32(s.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--ps-pids: '\(s)' is not a pid")
                }
                return p
            }
        }
        let serverCount = endpoints?.count ?? servers
        let model = try LoadModel(hidden: hidden ?? LoadModel.preset(model)!, parts: partition ? serverCount : 1)
        let scratch =
            workDir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "ps-load-\(getpid())-\(UUID().uuidString.prefix(8))")
        defer { if workDir == nil { try? FileManager.default.removeItem(at: scratch) } }
        var settings = LoadRunSettings(
            model: model, mode: mode, workers: workers, servers: servers,
            serverBinary: serverBinary ?? defaultServerBinary(), directory: scratch)
        settings.external = endpoints
        settings.externalPIDs = pids
        settings.warmup = warmup
        settings.window = window
        settings.joinTimeout = joinTimeout
        settings.heartbeats = heartbeats
        settings.lostAfter = lostAfter
        settings.label = label
        for e in serverEnv {
            let eq = e.firstIndex(of: "=")!
            settings.serverEnvironment[String(e[..<eq])] = String(e[e.index(after: eq)...])
        }
        let run = LoadRun(settings, logger: logger)
        let signals = SignalHandlers([SIGINT, SIGTERM]) { _ in run.interrupt() }
        defer { signals.cancel() }
        let result: LoadResult
        do {
            result = try run.run { FileHandle.standardError.write(Data(("ps-load: " + $0 + "\n").utf8)) }
        } catch LoadError.interrupted {
            FileHandle.standardError.write(Data("ps-load: \(LoadError.interrupted)\n".utf8))
            throw ExitCode(130)
        } catch let e as LoadError {
            FileHandle.standardError.write(Data("ps-load: \(e)\n".utf8))
            throw ExitCode.failure
        }
        FileHandle.standardError.write(Data(("ps-load: " + result.summary + "\n").utf8))
        try writeRows(result.csvRows(triad: triad), to: csv)
    }
}

/// STREAM-like copy and triad.
struct Bandwidth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure memory bandwidth (STREAM copy and triad) with 1 and all cores; print CSV.")

    @Option(help: "Bytes per array, in MiB (STREAM asks for at least 4x the last-level cache).") var arrayMib = 128
    @Option(help: "Timed passes; the best counts.") var passes = 8
    @Option(help: "Write the CSV here instead of standard output.") var csv: String?

    func validate() throws {
        guard (1...8192).contains(arrayMib) else { throw ValidationError("--array-mib must be in 1...8192") }
        guard (2...1000).contains(passes) else { throw ValidationError("--passes must be in 2...1000") }
    }

    func run() throws {
        var lines = ["threads,array_bytes,copy_bytes_per_s,triad_bytes_per_s,adam_parameter_updates_per_s"]
        for threads in Array(Set([1, ProcStat.cores])).sorted() {
            let m = MemoryBandwidth.measure(arrayBytes: arrayMib << 20, threads: threads, passes: passes)
            lines.append(
                String(
                    format: "%d,%d,%.0f,%.0f,%.0f", m.threads, m.arrayBytes, m.copy, m.triad,
                    m.adamParameterUpdatesPerSecond))
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "ps-load: %d thread(s): copy %.2f GB/s, triad %.2f GB/s\n", threads, m.copy / 1e9,
                        m.triad / 1e9
                    ).utf8))
        }
        if let csv {
            try writeText(lines.joined(separator: "\n") + "\n", to: csv)
        } else {
            print(lines.joined(separator: "\n"))
        }
    }
}

/// The scale model from measured rows.
struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "From a ps-load CSV: workers one server carries, and servers a job needs, on 10/25/100 GbE.")

    @Option(help: "The grid's CSV (ps-load run rows).") var csv: String
    @Option(
        help: """
            PARAMETERS:SECONDS, repeatable: a model size and a worker's step time (compute plus exchange). \
            Default: the seed (58240:0.0074, 1 ps + 1 worker here), hidden 256 (921088:0.041, one process) and \
            hidden 1024 (14694400:1.05, 1 ps + 1 worker, issue 17).
            """)
    var model: [String] = []
    @Option(help: "Workers in the job.") var jobWorkers = 100
    @Option(help: "Fit the rows with this label only (default: the plain runs).") var label = ""
    @Option(help: "Write the table (markdown) here instead of standard output.") var output: String?

    func run() throws {
        let rows: [[String: String]]
        do { rows = try CSVTable.read(csv) } catch let e as LoadError {
            throw ValidationError("\(e)")
        }
        let fit = try CPUFit(rows: rows, label: label)
        let cases = try (model.isEmpty ? ["58240:0.0074", "921088:0.041", "14694400:1.05"] : model).map {
            spec -> (parameters: Int, stepSeconds: Double) in
            let parts = spec.split(separator: ":")
            guard parts.count == 2, let p = Int(parts[0]), p > 0, let t = Double(parts[1]), t > 0 else {
                throw ValidationError("--model takes PARAMETERS:SECONDS, got \(spec)")
            }
            return (p, t)
        }
        let text = ScaleModel.table(fit: fit, cases: cases, jobWorkers: jobWorkers)
        if let output { try writeText(text, to: output) } else { print(text, terminator: "") }
    }
}

func makeLogger() -> Logger {
    var logger = Logger(label: "ps-load")
    logger.logLevel = .warning
    return logger
}

/// `ps-server` beside this executable.
func defaultServerBinary() -> String {
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let beside = me.deletingLastPathComponent().appendingPathComponent("ps-server").path
    if FileManager.default.isExecutableFile(atPath: beside) { return beside }
    return Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("ps-server").path ?? beside
}

func writeRows(_ rows: [String], to path: String?) throws {
    guard let path else {
        print(([LoadResult.csvHeader] + rows).joined(separator: "\n"))
        return
    }
    let exists = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int).flatMap { $0 } ?? 0 > 0
    let text = (exists ? rows : [LoadResult.csvHeader] + rows).joined(separator: "\n") + "\n"
    guard
        let handle = FileHandle(forWritingAtPath: path)
            ?? {
                FileManager.default.createFile(atPath: path, contents: nil) ? FileHandle(forWritingAtPath: path) : nil
            }()
    else { throw ValidationError("--csv \(path): cannot open it for writing") }
    defer { try? handle.close() }
    handle.seekToEndOfFile()
    handle.write(Data(text.utf8))
}

func writeText(_ text: String, to path: String) throws {
    do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
        throw ValidationError("\(path): cannot write it: \(error.localizedDescription)")
    }
}

SignalHandlers.prepareProcess()
PSLoad.main()
