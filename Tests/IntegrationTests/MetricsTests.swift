import Foundation
import Testing

extension Integration {
    /// `--metrics-port` on both executables, scraped during a run and parsed by Prometheus' own Python parser.
    @Suite("Metrics and health", .serialized)
    struct MetricsTests {
        /// A free TCP port on loopback (bound and released; the test's processes take it right after).
        static func freePort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            return Int(UInt16(bigEndian: addr.sin_port))
        }

        /// Scrapes `port` with Python: the metric families and samples as prometheus_client parses them, and the
        /// status of /healthz and /readyz.
        static func scrape(_ port: Int) throws -> [String: Any] {
            let script = """
                import json, sys, urllib.request, urllib.error
                from prometheus_client.parser import text_string_to_metric_families
                base = "http://127.0.0.1:%s" % sys.argv[1]
                def status(path):
                    try:
                        return urllib.request.urlopen(base + path, timeout=5).status
                    except urllib.error.HTTPError as e:
                        return e.code
                text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
                families = {f.name: {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]} for f in text_string_to_metric_families(text)}
                print(json.dumps({"families": families, "healthz": status("/healthz"), "readyz": status("/readyz"), "missing": status("/nothing")}))
                """
            let (status, text) = try ProcessHarness.runToCompletion("/usr/bin/env", ["python3", "-c", script, "\(port)"], seconds: 30)
            try #require(status == 0, "scraping port \(port) (prometheus_client is installed by scripts/test.sh): \(text)")
            return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        }

        @Test("a server and a worker serve /metrics in Prometheus' format, /healthz and /readyz, during a run")
        func scrapeDuringRun() throws {
            let h = try ProcessHarness()
            let (psPort, workerPort) = (Self.freePort(), Self.freePort())
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--metrics-port", "\(psPort)", "--checkpoint-dir", ckpt, "--checkpoint-every", "50"], label: "ps-m")
            var args = Small.args(steps: 1_000_000)
            args[args.firstIndex(of: "--log-every")! + 1] = "100"
            let worker = try h.start(
                "worker", ["--ps", ps, "--num-workers", "1", "--metrics-port", "\(workerPort)"] + args, label: "w")
            #expect(h.waitFor(worker, seconds: 60, "the worker at step 200") { $0.contains("step 200/") })
            let s = try Self.scrape(psPort)
            let w = try Self.scrape(workerPort)
            #expect(s["healthz"] as? Int == 200 && s["readyz"] as? Int == 200)
            #expect(w["healthz"] as? Int == 200 && w["readyz"] as? Int == 200)
            #expect(s["missing"] as? Int == 404)
            let sf = s["families"] as! [String: [String: Any]]
            let wf = w["families"] as! [String: [String: Any]]
            // prometheus_client strips _total from counter family names.
            for name in [
                "ps_updates_applied", "ps_pushes", "ps_pulls", "ps_push_staleness_updates", "ps_workers",
                "ps_checkpoint_age_seconds", "ps_checkpoint_duration_seconds", "ps_checkpoints",
            ] { #expect(sf[name] != nil, "server metrics lack \(name): \(sf.keys.sorted())") }
            for name in [
                "worker_steps", "worker_examples", "worker_loss", "worker_examples_per_second", "worker_push_seconds",
                "worker_pull_seconds", "worker_bytes_sent", "worker_bytes_received",
            ] { #expect(wf[name] != nil, "worker metrics lack \(name): \(wf.keys.sorted())") }
            #expect(sf["ps_updates_applied"]?["type"] as? String == "counter")
            #expect(wf["worker_push_seconds"]?["type"] as? String == "histogram")
            let steps = (wf["worker_steps"]?["samples"] as? [[Any]])?.first?[2] as? Double ?? 0
            #expect(steps >= 200)  // it was scraped after printing step 200
            worker.process.terminate()
            #expect(h.wait(worker, seconds: 30, "the worker to stop") == 0)
            #expect(h.wait(server, seconds: 30, "the server to exit") == 0)
            print("metrics: server families \(sf.count), worker families \(wf.count), worker steps at the scrape \(Int(steps))")
        }
    }
}
