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
            // Training goes on after the flood: a later step is printed.
            #expect(
                h.waitFor(worker, seconds: 60, "the worker past the flood") { out in
                    out.contains("step 300/") || out.contains("step 400/")
                })
            worker.process.terminate()
            #expect(h.wait(worker, seconds: 30, "the worker to stop") == 0)
        }
    }
}
