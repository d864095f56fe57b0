import Foundation
import Wire

/// How to start the servers a run drives.
public struct FleetSettings: Sendable {
    /// The `ps-server` executable.
    public var binary: String
    /// How many servers, their mode, and the job's worker count (`--num-workers`).
    public var servers: Int
    public var mode: SyncMode
    public var workers: Int
    /// A worker silent this long is dropped; also how long servers outlive a ps-load killed with SIGKILL
    /// (their workers go silent, every one is declared lost, and they exit).
    public var workerTimeout: Double = 10
    /// Seconds a server may take to listen.
    public var startTimeout: Double = 30
    /// Where port files and logs go.
    public var directory: URL
    /// More `ps-server` arguments (say `--optimizer sgd`).
    public var extraArguments: [String] = []
    /// Environment variables set for the servers only (say glibc's `MALLOC_MMAP_THRESHOLD_`).
    public var environment: [String: String] = [:]

    public init(binary: String, servers: Int, mode: SyncMode, workers: Int, directory: URL) {
        self.binary = binary
        self.servers = servers
        self.mode = mode
        self.workers = workers
        self.directory = directory
    }
}

/// The parameter servers of one run: real `ps-server` processes on loopback, started on free ports, and
/// stopped (SIGTERM, then SIGKILL after a bound) however the run ends.
public final class ServerFleet: @unchecked Sendable {
    /// `127.0.0.1:PORT` of each server.
    public let endpoints: [String]
    /// Their process ids, for /proc; nil for servers this process did not start.
    public let pids: [Int32]?
    private let processes: [Process]
    private let logs: [URL]
    private let lock = NSLock()

    /// Servers someone else started (`--ps`); `pids` lets /proc be read for them.
    public init(external endpoints: [String], pids: [Int32]?) throws {
        for e in endpoints {
            let host = e.split(separator: ":").first.map(String.init) ?? ""
            guard ["127.0.0.1", "localhost", "::1"].contains(host), e.split(separator: ":").count == 2,
                let port = Int(e.split(separator: ":")[1]), (1...65535).contains(port)
            else { throw LoadError.notLoopback(e) }
        }
        self.endpoints = endpoints
        self.pids = pids
        processes = []
        logs = []
    }

    /// Starts `settings.servers` servers and waits (bounded) until each listens.
    /// - Throws: `LoadError.serverMissing`, `.serverDidNotStart` (the others are stopped first).
    public init(starting settings: FleetSettings) throws {
        guard FileManager.default.isExecutableFile(atPath: settings.binary) else {
            throw LoadError.serverMissing(path: settings.binary)
        }
        try? FileManager.default.createDirectory(at: settings.directory, withIntermediateDirectories: true)
        var processes: [Process] = []
        var logs: [URL] = []
        var portFiles: [String] = []
        do {
            for i in 0..<settings.servers {
                let portFile = settings.directory.appendingPathComponent("ps-\(i).port").path
                try? FileManager.default.removeItem(atPath: portFile)
                let log = settings.directory.appendingPathComponent("ps-\(i).log")
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: settings.binary)
                p.arguments =
                    [
                        "--port", "0", "--port-file", portFile, "--name", "ps-\(i)", "--mode", settings.mode.rawValue,
                        "--num-workers", "\(settings.workers)", "--worker-timeout", "\(settings.workerTimeout)",
                        "--max-workers", "\(max(1024, settings.workers))",
                    ] + settings.extraArguments
                if !settings.environment.isEmpty {
                    p.environment = ProcessInfo.processInfo.environment.merging(settings.environment) { $1 }
                }
                let handle = try FileHandle(forWritingTo: log)
                p.standardOutput = handle
                p.standardError = handle
                try p.run()
                processes.append(p)
                logs.append(log)
                portFiles.append(portFile)
            }
            var endpoints: [String] = []
            for (i, file) in portFiles.enumerated() {
                endpoints.append(
                    try Self.waitForPort(
                        file, process: processes[i], log: logs[i], index: i, seconds: settings.startTimeout))
            }
            self.endpoints = endpoints
        } catch {
            Self.stop(processes, grace: 5)
            throw error
        }
        self.processes = processes
        self.logs = logs
        pids = processes.map(\.processIdentifier)
    }

    deinit { stop() }

    static func waitForPort(_ file: String, process: Process, log: URL, index: Int, seconds: Double) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return "127.0.0.1:\(port)"
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw LoadError.serverDidNotStart(
            index: index, seconds: seconds,
            output: String(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(2000)))
    }

    /// The end of each server's log, for messages.
    public func logTails(bytes: Int = 1500) -> [String] {
        logs.map { String(((try? String(contentsOf: $0, encoding: .utf8)) ?? "").suffix(bytes)) }
    }

    /// Waits up to `seconds` for the servers to exit on their own (they do once every worker is done).
    /// - Returns: whether all did.
    @discardableResult
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while processes.contains(where: \.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return !processes.contains(where: \.isRunning)
    }

    /// Stops every server still running: SIGTERM, then SIGKILL after 5 s. Safe to call more than once and
    /// from a signal handler's thread.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        Self.stop(processes, grace: 5)
    }

    static func stop(_ processes: [Process], grace: Double) {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(grace)
        for p in processes {
            while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        for p in processes where p.processIdentifier > 0 {
            // Reaped by Foundation; wait (bounded by the SIGKILL above) so no zombie outlives the run.
            let deadline = Date().addingTimeInterval(2)
            while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        }
    }
}
