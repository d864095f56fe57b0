import Foundation
import Testing

extension Integration {
    /// The metrics endpoint of the real executables: a taken port is an error at start, and a header flood
    /// neither silences `/healthz` nor stops training.
    @Suite("HTTP endpoint under attack", .serialized)
    struct HTTPFloodTests {
        /// Holds a loopback TCP port (listening) for as long as it lives.
        final class HeldPort {
            let fd: Int32
            let port: Int
            init() {
                let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                _ = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) }
                }
                _ = listen(s, 4)
                _ = withUnsafeMutablePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
                }
                fd = s
                port = Int(UInt16(bigEndian: addr.sin_port))
            }
            deinit { close(fd) }
        }

        @Test("a --metrics-port already in use ends ps-server and worker at start with exit 64 naming the port")
        func takenPort() throws {
            let h = try ProcessHarness()
            let held = HeldPort()
            let server = try h.start(
                "ps-server", ["--port", "0", "--metrics-port", "\(held.port)"], label: "ps-taken")
            #expect(h.wait(server, seconds: 30, "the server to refuse the port") == 64)
            #expect(server.output.contains("--metrics-port \(held.port)"), "\(server.output)")
            let worker = try h.start(
                "worker", ["--metrics-port", "\(held.port)"] + Small.args(steps: 10), label: "w-taken")
            #expect(h.wait(worker, seconds: 30, "the worker to refuse the port") == 64)
            #expect(worker.output.contains("--metrics-port \(held.port)"), "\(worker.output)")
        }

        @Test(
            "four 3 MB header-line floods at a training worker: /healthz answers, the floods are cut off, training goes on"
        )
        func headerFloodOnWorker() throws {
            let h = try ProcessHarness()
            let port = MetricsTests.freePort()
            var args = Small.args(steps: 1_000_000)
            args[args.firstIndex(of: "--log-every")! + 1] = "100"
            let worker = try h.start("worker", ["--metrics-port", "\(port)"] + args, label: "w-flood")
            #expect(h.waitFor(worker, seconds: 60, "the worker at step 100") { $0.contains("step 100/") })
            let script = """
                import socket, sys, threading, urllib.request, json
                port = int(sys.argv[1])
                cut = []
                held = threading.Barrier(5)
                def flood():
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s.sendall(b"GET /metrics HTTP/1.1\\r\\nX-big: " + b"a" * 6000)
                    held.wait(timeout=30)
                    sent, chunk = 0, b"a" * 65536
                    try:
                        while sent < 3_000_000:
                            s.sendall(chunk); sent += len(chunk)
                        answer = s.recv(100)
                        cut.append(answer.startswith(b"HTTP/1.1 431") or answer == b"")
                    except OSError:
                        cut.append(True)
                threads = [threading.Thread(target=flood) for _ in range(4)]
                for t in threads: t.start()
                held.wait(timeout=30)
                codes = [urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10).status for _ in range(20)]
                for t in threads: t.join(60)
                print(json.dumps({"health": codes, "cut": cut}))
                """
            let (status, text) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["python3", "-c", script, "\(port)"], seconds: 120)
            #expect(status == 0, "\(text)")
            let result = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: [Any]]
            #expect((result?["health"] as? [Int]) == Array(repeating: 200, count: 20), "\(text)")
            #expect((result?["cut"] as? [Bool]) == [true, true, true, true], "\(text)")
            // Training goes on after the flood: 200 steps past where it was when the flood ended.
            let after = (LivenessTests.lastStep(worker.output) / 100 + 2) * 100
            #expect(h.waitFor(worker, seconds: 120, "the worker at step \(after), past the flood") { $0.contains("step \(after)/") })
            worker.process.terminate()
            #expect(h.wait(worker, seconds: 30, "the worker to stop") == 0)
        }

        @Test("during a header flood on a server's /metrics, /healthz answers and SIGTERM ends it with its final checkpoint")
        func sigtermDuringFlood() throws {
            let h = try ProcessHarness()
            let port = MetricsTests.freePort()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--metrics-port", "\(port)", "--checkpoint-dir", ckpt, "--keep-serving"], label: "ps-flood")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let worker = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + args, label: "w")
            try #require(h.waitFor(worker, seconds: 120, "the worker at step 20") { $0.contains("step 20/") })
            // Four connections stream endless header lines (reconnecting when cut) until the stop file appears.
            let stop = h.directory.appendingPathComponent("stop-flood").path
            let script = """
                import os, socket, sys, threading, time, urllib.request
                port, stop = int(sys.argv[1]), sys.argv[2]
                def flood():
                    deadline = time.time() + 300
                    while not os.path.exists(stop) and time.time() < deadline:
                        try:
                            s = socket.create_connection(("127.0.0.1", port), timeout=5)
                            s.sendall(b"GET /metrics HTTP/1.1\\r\\nX-big: ")
                            while not os.path.exists(stop) and time.time() < deadline:
                                s.sendall(b"a" * 65536)
                        except OSError:
                            time.sleep(0.01)
                threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
                for t in threads: t.start()
                time.sleep(1)
                codes = [urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10).status for _ in range(10)]
                print("health during the flood:", codes, flush=True)
                for t in threads: t.join(310)
                """
            let out = h.directory.appendingPathComponent("flood.out")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let flood = Process()
            flood.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            flood.arguments = ["python3", "-c", script, "\(port)", stop]
            flood.standardOutput = try FileHandle(forWritingTo: out)
            flood.standardError = flood.standardOutput
            try flood.run()
            defer {
                _ = FileManager.default.createFile(atPath: stop, contents: nil)
                let deadline = Date().addingTimeInterval(30)
                while flood.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                if flood.isRunning { flood.terminate() }
            }
            let floodRun = ProcessHarness.Running(process: flood, stdout: out, stderr: out)
            #expect(
                h.waitFor(floodRun, seconds: 120, "/healthz to answer during the flood") {
                    $0.contains("health during the flood: [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]")
                })
            // Still flooding: SIGTERM is taken on its own thread and the server stops with its checkpoint.
            #expect(flood.isRunning)
            server.process.terminate()
            h.expectExit(server, 0, seconds: 60, "ps-server on SIGTERM during the flood")
            #expect(server.output.contains("reason=final"), "\(server.output.suffix(2000))")
            #expect(!newestCheckpoints(ckpt).isEmpty)
            worker.process.terminate()
            h.wait(worker, seconds: 60, "the worker")
            print("http flood: /healthz answered 10 of 10 during a 4-connection header flood; SIGTERM ended the server with its final checkpoint")
        }
    }
}
