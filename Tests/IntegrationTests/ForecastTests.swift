import Foundation
import Testing

extension Integration {
    /// `forecast` on what a real cluster and a real worker wrote.
    @Suite("forecast", .serialized)
    struct ForecastTests {
        @Test(
            "a cluster's checkpoints and a saved model carry what forecast needs; mismatches are named exits; --serve answers"
        )
        func forecastFromCluster() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let saved = h.directory.appendingPathComponent("model.safetensors").path
            let (s0, ps0) = try h.startServer(["--checkpoint-dir", ckpt, "--num-workers", "1"], label: "ps-0")
            let (s1, ps1) = try h.startServer(["--checkpoint-dir", ckpt, "--num-workers", "1"], label: "ps-1")
            let worker = try h.start(
                "worker", ["--ps", "\(ps0),\(ps1)", "--num-workers", "1", "--save", saved] + Small.args(steps: 60),
                label: "w")
            #expect(h.wait(worker, seconds: 120, "the worker") == 0, "\(worker.output)")
            #expect(h.wait(s0, seconds: 30, "ps-0 to exit") == 0)
            #expect(h.wait(s1, seconds: 30, "ps-1 to exit") == 0)

            func forecast(_ args: [String]) throws -> (Int32, String) {
                try ProcessHarness.runToCompletion(
                    ProcessHarness.binDirectory.appendingPathComponent("forecast").path, args, seconds: 120)
            }
            let (status, text) = try forecast(["--restore", ckpt, "--interval", "80"])
            #expect(status == 0, "\(text)")
            let lines = text.split(separator: "\n").filter { !$0.contains(" info ") }
            #expect(lines.first == "step,value,lo_80,hi_80", "\(text)")
            #expect(lines.count == 4, "\(text)")  // horizon 3
            let (jsonStatus, json) = try forecast(["--model", saved, "--format", "json"])
            #expect(jsonStatus == 0 && json.contains("\"forecast\""), "\(json)")
            let (bt, table) = try forecast(["--model", saved, "--backtest", "0", "--interval", "80,95"])
            #expect(bt == 0 && table.contains("MASE") && table.contains("coverage of the 80% interval"), "\(table)")

            #expect(try forecast(["--restore", ckpt, "--horizon", "5"]).0 == 64)
            #expect(try forecast(["--model", saved, "--data", "co2"]).0 == 65)  // other columns
            let short = h.directory.appendingPathComponent("short.csv").path
            _ = FileManager.default.createFile(atPath: short, contents: Data("value\n1\n2\n3\n".utf8))
            #expect(try forecast(["--model", saved, "--data", short]).0 == 65)  // too few rows
            #expect(try forecast(["--model", h.directory.appendingPathComponent("none").path]).0 == 66)

            let port = MetricsTests.freePort()
            let serve = try h.start("forecast", ["--serve", "--port", "\(port)", "--restore", ckpt], label: "serve")
            #expect(h.waitFor(serve, seconds: 60, "the server to listen") { $0.contains("listening") })
            let script = """
                import json, sys, urllib.request
                body = json.dumps({"windows": [[0.1, 0.2, 0.3, 0.2, 0.1, 0.0]] * 3, "levels": [80]}).encode()
                r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/v1/forecast" % sys.argv[1], data=body,
                    headers={"Content-Type": "application/json"}), timeout=30)
                a = json.loads(r.read())
                print(len(a["forecasts"]), len(a["forecasts"][0]["values"]), len(a["forecasts"][0]["hi_80"]))
                """
            let (ps, answer) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["python3", "-c", script, "\(port)"], seconds: 60)
            #expect(ps == 0 && answer.hasPrefix("3 3 3"), "\(answer)")
            serve.process.terminate()
            #expect(h.wait(serve, seconds: 30, "forecast --serve to stop") == 0)
        }
    }
}
