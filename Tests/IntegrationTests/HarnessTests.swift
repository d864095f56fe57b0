import Foundation
import Testing

extension Integration {
    /// `cluster/run-local.sh`, the main job, run for real (on the debug binaries, a small model, few steps).
    @Suite("The local cluster harness", .serialized)
    struct HarnessTests {
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
            .standardized

        /// Runs the harness (120 s at most) and returns its status and output.
        func harness(_ arguments: [String]) throws -> (Int32, String) {
            try ProcessHarness.runToCompletion(
                "/bin/bash",
                [Self.root.appendingPathComponent("cluster/run-local.sh").path, "--bin", ProcessHarness.binDirectory.path]
                    + arguments,
                seconds: 120)
        }

        /// The processes a harness run started (its `run/pids` file) that are still alive, after giving the
        /// last ones (killed by its cleanup) up to 5 s to be gone.
        func leftovers(_ output: String) -> [Int32] {
            let deadline = Date().addingTimeInterval(5)
            var alive = running(output)
            while !alive.isEmpty && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
                alive = running(output)
            }
            return alive
        }

        func running(_ output: String) -> [Int32] {
            guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("servers: ") }),
                let run = line.components(separatedBy: "run: ").last,
                let text = try? String(
                    contentsOfFile: Self.root.appendingPathComponent(run).appendingPathComponent("pids").path,
                    encoding: .utf8)
            else {
                Issue.record("the harness output names no run directory with a pids file")
                return []
            }
            let pids = text.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            #expect(pids.count >= 3)
            return pids.filter { kill($0, 0) == 0 && !isZombie($0) }
        }

        static let small = ["--", "--batch", "4", "--window", "6", "--horizon", "3", "--hidden", "8", "--hidden2", "5"]

        @Test("2 servers and 2 workers on the built-in data: progress, then held-out MSE next to the naive forecast")
        func mainJob() throws {
            let (status, text) = try harness(["--steps", "40"] + Self.small)
            #expect(status == 0, "\(text.suffix(3000))")
            #expect(
                text.contains("[worker 0]") && text.contains("[worker 1]") && text.contains("[ps 0]")
                    && text.contains("[ps 1]"))
            #expect(text.contains("step 40/40"))
            let last = text.split(separator: "\n").last { $0.hasPrefix("held-out MSE") }
            #expect(last?.contains("vs naive forecast") == true, "\(text.suffix(2000))")
            #expect(leftovers(text).isEmpty)
        }

        static let longer = ["--", "--batch", "4", "--window", "6", "--horizon", "3", "--hidden", "8", "--hidden2", "5", "--log-every", "10"]

        @Test("a worker that dies mid-run stops the whole cluster, and nothing is left running")
        func failureStopsAll() throws {
            let (status, text) = try harness(["--steps", "3000", "--kill-at", "20", "worker", "1"] + Self.longer)
            #expect(status == 1, "\(text.suffix(2000))")
            #expect(text.contains("kill -9 worker 1") && text.contains("worker 1 failed with exit 137: stopping the cluster"), "\(text.suffix(2000))")
            #expect(leftovers(text).isEmpty)
        }

        @Test("--restart-failed brings a killed server back on its port from its checkpoint, and the run completes")
        func restartFailed() throws {
            let (status, text) = try harness(["--steps", "600", "--restart-failed", "--kill-at", "100", "ps", "0"] + Self.longer)
            #expect(status == 0, "\(text.suffix(3000))")
            #expect(text.contains("ps 0 exited with 137: restarting it"), "\(text.suffix(3000))")
            #expect(text.contains("recovered ps"), "\(text.suffix(3000))")
            #expect(text.contains("held-out MSE"))
            #expect(leftovers(text).isEmpty)
        }
    }
}

/// Whether `pid` has exited but not been reaped yet (its state in /proc is Z).
func isZombie(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
}
