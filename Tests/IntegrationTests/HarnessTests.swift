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

extension Integration.HarnessTests {
    @Test("Ctrl-C in a real terminal (tmux) on the main job: every server writes its final checkpoint, and nothing is left running")
    func controlC() throws {
        let tmux = ["/usr/bin/tmux", "/bin/tmux", "/usr/local/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(tmux, "tmux is needed (scripts/test.sh installs it)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctrl-c-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("terminal.log").path
        let session = "ctrlc\(getpid())"
        let socket = dir.appendingPathComponent("tmux.sock").path
        // Through Python's subprocess, which closes every other descriptor in the child: the tmux server that the
        // client forks would otherwise inherit the descriptor by which Foundation learns that a child exited,
        // and this process would wait for ever.
        func tmuxRun(_ args: [String]) throws -> Int32 {
            let run = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode)"
            return try ProcessHarness.runToCompletion("/usr/bin/env", ["python3", "-c", run, path, "-S", socket] + args, seconds: 30).0
        }
        // What a user types: the harness in the foreground of a terminal, training until interrupted. Its output
        // goes to a file, but the terminal's Ctrl-C still reaches its whole foreground group (the harness, the
        // servers, the workers and their log filters), which is what this checks.
        let command =
            "cd \(Self.root.path) && cluster/run-local.sh --bin \(ProcessHarness.binDirectory.path) --steps 100000000 "
            + (Self.longer + ["--scaling", "relative"]).joined(separator: " ") + " > \(log) 2>&1; echo EXIT:$? >> \(log)"
        #expect(try tmuxRun(["new-session", "-d", "-s", session, "-x", "200", "-y", "50", command]) == 0)
        // The session ends with the harness (and tmux with its last session); should anything remain, the
        // server is stopped, and whatever still runs on this socket is killed.
        defer {
            _ = try? tmuxRun(["kill-server"])
            _ = try? ProcessHarness.runToCompletion("/usr/bin/pkill", ["-KILL", "-f", socket], seconds: 10)
        }
        // A terminal ends lines with "\r\n".
        func text() -> String { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").replacingOccurrences(of: "\r", with: "") }
        func waitFor(_ what: String, seconds: Double, _ condition: (String) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if condition(text()) { return true }
                Thread.sleep(forTimeInterval: 0.1)
            }
            Issue.record("waited \(seconds) s for \(what); the terminal showed: \(text().suffix(3000))")
            return false
        }
        try #require(waitFor("both workers training", seconds: 120) { $0.contains("[worker 0] step 20/") && $0.contains("[worker 1] step 20/") })
        #expect(try tmuxRun(["send-keys", "-t", session, "C-c"]) == 0)
        try #require(waitFor("the harness to exit", seconds: 120) { $0.contains("EXIT:") })
        let screen = text()
        for i in 0..<2 {
            #expect(
                screen.split(separator: "\n").contains { $0.contains("[ps \(i)]") && $0.contains("checkpoint written") && $0.contains("reason=final") },
                "ps \(i)'s final checkpoint: \(screen.suffix(3000))")
        }
        #expect(screen.contains("final checkpoints written: 2 of 2 servers"), "\(screen.suffix(3000))")
        #expect(!screen.contains("SIGPIPE") && !screen.contains("Broken pipe"), "\(screen.suffix(3000))")
        #expect(leftovers(screen).isEmpty, "processes left running after Ctrl-C")
        print("ctrl-c: the harness in tmux, interrupted while training: both servers wrote their final checkpoint; nothing left running")
    }
}

extension Integration.HarnessTests {
    @Test("--serve PORT starts forecast --serve beside the run: it serves the servers' checkpoints, then stops with the harness")
    func serveBeside() throws {
        let h = try ProcessHarness()
        let port = Integration.MetricsTests.freePort()
        let out = h.directory.appendingPathComponent("harness.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        // Through a wrapper that clears the signal mask: Foundation starts children with the test thread's
        // mask, in which SIGTERM is blocked, and bash (unlike our executables) would never see it.
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments =
            ["python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv('/bin/bash', ['/bin/bash'] + sys.argv[1:])",
            Self.root.appendingPathComponent("cluster/run-local.sh").path, "--bin", ProcessHarness.binDirectory.path, "--steps", "300",
            "--serve", "\(port)"] + Self.small + ["--scaling", "relative"]
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = p.standardOutput
        try p.run()
        let run = ProcessHarness.Running(process: p, stdout: out, stderr: out)
        defer { if p.isRunning { p.terminate() } }
        #expect(h.waitFor(run, seconds: 180, "the run to finish and keep serving") { $0.contains("still serving on port \(port)") })
        // The servers' final checkpoints may be newer than what `forecast` has loaded when the run ends (a
        // short run can end before its first complete set): it is ready once its reload finds them, so this
        // waits for /readyz to say 200, 50 s at most, rather than asking once.
        let script = """
            import json, sys, time, urllib.error, urllib.request
            port = int(sys.argv[1])
            deadline, ready = time.time() + 50, None
            while time.time() < deadline:
                try:
                    ready = urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=10).status
                    break
                except urllib.error.HTTPError as e:
                    ready = e.code
                    time.sleep(0.2)
            model = json.load(urllib.request.urlopen("http://127.0.0.1:%d/v1/model" % port, timeout=10))
            print(json.dumps({"ready": ready, "model": sorted(model.keys())}))
            """
        let (status, text) = try ProcessHarness.runToCompletion("/usr/bin/env", ["python3", "-c", script, "\(port)"], seconds: 60)
        #expect(status == 0 && text.contains("\"ready\": 200"), "\(text)\n\(run.output.suffix(2000))")
        p.terminate()
        #expect(h.wait(run, seconds: 60, "the harness to stop") != nil)
        #expect(leftovers(run.output).isEmpty, "processes left running after the harness stopped")
        print("run-local --serve: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}
