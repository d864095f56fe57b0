import Foundation
import Testing

@testable import LoadGenerator

/// `ps-load` as a user runs it: the real executable against real `ps-server` processes on loopback. Every wait
/// is bounded, and every process is stopped however the test ends.
@Suite("ps-load against real servers", .serialized)
struct PSLoadProcessTests {
    /// The built executables: `$SCOPED_TRAINER_BIN`, else the package's `.build/debug`.
    static let bin: URL = {
        if let dir = ProcessInfo.processInfo.environment["SCOPED_TRAINER_BIN"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug")
            .standardized
    }()

    /// A started `ps-load` with its output in a file.
    final class Running {
        let process = Process()
        let output: URL
        init(_ arguments: [String], directory: URL) throws {
            output = directory.appendingPathComponent("ps-load.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            process.executableURL = PSLoadProcessTests.bin.appendingPathComponent("ps-load")
            process.arguments = arguments
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }
        var text: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

        /// Polls the output (every 20 ms, `seconds` at most) until it holds `needle`; false if it never did.
        func waitForOutput(_ needle: String, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if text.contains(needle) { return true }
                if !process.isRunning { return text.contains(needle) }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }

        /// Waits for exit, `seconds` at most; then kills it and returns nil.
        func waitForExit(seconds: Double) -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                return nil
            }
            return process.terminationStatus
        }

        /// The server pids ps-load printed ("servers at ... (pids 1,2)").
        var serverPIDs: [Int32] {
            guard let range = text.range(of: "(pids ") else { return [] }
            let rest = text[range.upperBound...].prefix { $0 != ")" }
            return rest.split(separator: ",").compactMap { Int32($0) }
        }
    }

    func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ps-load-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Whether a process is gone (or a zombie nobody waits for any more: not ours to reap).
    func gone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return true }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return stat.contains(") Z ")
    }

    @Test(
        "2 async workers against 1 server: every column present, updates applied, CPU, latency and memory measured; the server is gone after"
    )
    func tinyRun() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("out.csv").path
        let run = try Running(
            [
                "run", "--model", "58k", "--mode", "async", "--workers", "2", "--servers", "1", "--warmup", "0.3",
                "--window", "1",
                "--triad", "1e10", "--csv", csv,
            ], directory: dir)
        let status = run.waitForExit(seconds: 120)
        #expect(status == 0, "\(run.text)")
        let rows = try CSVTable.read(csv)
        let row = try #require(rows.first, "\(run.text)")
        #expect(rows.count == 1)
        #expect(Set(row.keys) == Set(LoadResult.columns))
        #expect(row["mode"] == "async")
        #expect(row["workers"] == "2")
        #expect(row["parameters"] == "58240")
        #expect(try #require(Double(row["updates"] ?? "")) > 0)
        #expect(try #require(Double(row["cpu_ms_per_update"] ?? "")) > 0)
        #expect(try #require(Int(row["latency_samples"] ?? "")) > 0)
        let p50 = try #require(Double(row["push_p50_ms"] ?? ""))
        let p99 = try #require(Double(row["push_p99_ms"] ?? ""))
        #expect(p50 > 0 && p50 <= p99)
        #expect(try #require(Double(row["rss_mb"] ?? "")) > 0)
        #expect(try #require(Double(row["apply_fraction"] ?? "")) > 0)
        let pids = run.serverPIDs
        #expect(pids.count == 1, "\(run.text)")
        for pid in pids { #expect(gone(pid), "ps-server \(pid) outlived ps-load") }
    }

    @Test("Ctrl-C during the measurement: ps-load exits 130 and stops the servers it started")
    func interrupted() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try Running(
            [
                "run", "--model", "58k", "--mode", "sync", "--workers", "2", "--servers", "2", "--warmup", "0",
                "--window", "600",
            ],
            directory: dir)
        #expect(run.waitForOutput("measuring", seconds: 120), "\(run.text)")
        let pids = run.serverPIDs
        kill(run.process.processIdentifier, SIGINT)
        #expect(run.waitForExit(seconds: 60) == 130, "\(run.text)")
        #expect(pids.count == 2, "\(run.text)")
        for pid in pids { #expect(gone(pid), "ps-server \(pid) outlived ps-load") }
    }
}
