import Foundation
import Testing

/// Every suite of real processes, one after another: they share two cores, and tests that compare
/// timings or wait on bounds must not compete with each other for them.
@Suite("Real processes", .serialized)
enum Integration {}

/// Starts the real `ps-server` and `worker` executables on loopback, bounds every wait, and stops every
/// process it started when it goes away.
final class ProcessHarness {
    /// The built executables: `$SCOPED_TRAINER_BIN`, else the package's `.build/debug`.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["SCOPED_TRAINER_BIN"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug")
            .standardized
    }()

    let directory: URL
    private var processes: [Process] = []
    /// Every process started, by label, so that a failed wait can show all of their output.
    private var started: [(label: String, running: Running)] = []

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for p in processes {
            while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A started process with its output files.
    struct Running {
        let process: Process
        let stdout: URL
        let stderr: URL
        var output: String {
            ((try? String(contentsOf: stdout, encoding: .utf8)) ?? "")
                + ((try? String(contentsOf: stderr, encoding: .utf8)) ?? "")
        }
    }

    /// - Parameter unblockedSignals: start it with no signal blocked, as a shell does. A test runner may block
    ///   SIGTERM, and children inherit the mask: so would a library's threads made before `main`, hiding what
    ///   a SIGTERM does to a process started from a shell or by Kubernetes.
    /// - Parameter ignoring: signals it starts with ignored (as `nohup` does SIGHUP); implies `unblockedSignals`.
    func start(
        _ executable: String, _ arguments: [String], label: String, unblockedSignals: Bool = false, ignoring: [Int32] = []
    ) throws -> Running {
        let p = Process()
        let path = Self.binDirectory.appendingPathComponent(executable)
        if unblockedSignals || !ignoring.isEmpty {
            let ignore = ignoring.map { "signal.signal(\($0), signal.SIG_IGN); " }.joined()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [
                "python3", "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); \(ignore)os.execv(sys.argv[1], sys.argv[1:])",
                path.path,
            ] + arguments
        } else {
            p.executableURL = path
            p.arguments = arguments
        }
        let out = directory.appendingPathComponent("\(label).out")
        let err = directory.appendingPathComponent("\(label).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        processes.append(p)
        let r = Running(process: p, stdout: out, stderr: err)
        started.append((label, r))
        return r
    }

    /// Starts a server on a free port and returns it with its `host:port` once it listens (10 s at most).
    func startServer(_ arguments: [String], label: String) throws -> (Running, String) {
        let portFile = directory.appendingPathComponent("\(label).port").path
        let r = try start(
            "ps-server", ["--port", "0", "--port-file", portFile, "--name", label] + arguments, label: label)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return (r, "127.0.0.1:\(port)")
            }
            if !r.process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        Issue.record("ps-server \(label) did not listen within 10 s: \(r.output)")
        throw CancellationError()
    }

    /// Runs a command to completion, `seconds` at most (then it is stopped and an issue recorded), and
    /// returns its status and its combined output.
    static func runToCompletion(_ executable: String, _ arguments: [String], seconds: Double) throws -> (Int32, String)
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let handle = try FileHandle(forWritingTo: out)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning {
            p.terminate()
            Issue.record("\(executable) did not finish within \(seconds) s")
            let grace = Date().addingTimeInterval(5)
            while p.isRunning && Date() < grace { Thread.sleep(forTimeInterval: 0.02) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// Makes a CURVE key pair with `ps-server --generate-curve-keys`; returns the prefix of its two files.
    func curveKeys(_ name: String) throws -> String {
        let prefix = directory.appendingPathComponent(name).path
        let gen = try start("ps-server", ["--generate-curve-keys", prefix], label: "keys-\(name)")
        #expect(wait(gen, seconds: 30, "key generation") == 0, "\(gen.output)")
        return prefix
    }

    /// Waits until `r`'s output satisfies `condition` (polling its files), at most `seconds`; records an issue
    /// naming `what` and returns false on timeout or if the process exits first.
    func waitFor(_ r: Running, seconds: Double, _ what: String, _ condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(r.output) { return true }
            if !r.process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        if condition(r.output) { return true }
        Issue.record("waited \(seconds) s for \(what)\n\(everyOutput())")
        return false
    }

    /// The last lines of every process this harness started (servers' logs included), for failure messages.
    func everyOutput(lastBytes: Int = 2500) -> String {
        started.map { "--- \($0.label) (\($0.running.process.isRunning ? "running" : "exited"))\n\(String($0.running.output.suffix(lastBytes)))" }
            .joined(separator: "\n")
    }

    /// Waits (bounded) for a process to exit and expects `status`; on anything else records an issue with every
    /// process's output.
    func expectExit(_ r: Running, _ status: Int32, seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let got = wait(r, seconds: seconds, what)
        if let got, got != status {
            Issue.record("\(what) exited with \(got), expected \(status)\n\(everyOutput())", sourceLocation: sourceLocation)
        }
    }

    /// Waits for a process to exit, at most `seconds`; returns its status, or nil (and kills it) on timeout.
    @discardableResult
    func wait(_ r: Running, seconds: Double, _ what: String) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while r.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if r.process.isRunning {
            Issue.record("timed out after \(seconds) s waiting for \(what)\n\(everyOutput())")
            r.process.terminate()
            return nil
        }
        return r.process.terminationStatus
    }
}

/// The small model every integration test trains: fast even in a debug build.
enum Small {
    /// Steps for a worker that trains until a test stops it by signal: a run's length is never a test's timer.
    static let untilStopped = 100_000_000

    static func args(horizon: Int = 3, steps: Int, seed: Int = 3) -> [String] {
        [
            "--batch", "4", "--window", "6", "--horizon", "\(horizon)", "--hidden", "8", "--hidden2", "5",
            "--data", "synthetic", "--scaling", "relative", "--seed", "\(seed)", "--steps", "\(steps)", "--timeout", "60",
            "--log-every", "1000",
        ]
    }
}

/// The newest checkpoint file of each server in `dir`: files are `<server>-<8-digit sequence>.safetensors`.
func newestCheckpoints(_ dir: String) -> [String] {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }
    var newest: [String: String] = [:]
    for f in files.sorted() {
        let stem = f.dropLast(".safetensors".count)
        guard let dash = stem.lastIndex(of: "-") else { continue }
        newest[String(stem[..<dash])] = "\(dir)/\(f)"
    }
    return newest.values.sorted()
}
