import Foundation
import SafeTensors
import Testing

extension Integration {
    @Suite("Executables and file interop")
    struct InteropTests {
        func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
            try ProcessHarness.runToCompletion(executable, arguments, seconds: 30)
        }

        @Test("ps-server and worker answer --help", arguments: ["ps-server", "worker"])
        func help(executable: String) throws {
            let (status, text) = try run(ProcessHarness.binDirectory.appendingPathComponent(executable).path, ["--help"])
            #expect(status == 0)
            #expect(text.contains("USAGE") && text.contains("--"))
        }

        @Test("bad command lines get usage errors (exit 64) that name the option; a missing data file is 66")
        func badOptions() throws {
            let bin = ProcessHarness.binDirectory
            let (s1, t1) = try run(bin.appendingPathComponent("ps-server").path, ["--port", "70000"])
            #expect(s1 == 64 && t1.contains("--port"))
            let (s2, t2) = try run(
                bin.appendingPathComponent("worker").path, ["--data", "/no/such.csv", "--column", "v", "--steps", "1"])
            #expect(s2 == 66 && t2.contains("/no/such.csv"), "\(t2)")
            let (s3, t3) = try run(bin.appendingPathComponent("worker").path, ["--task-index", "3", "--num-workers", "2"])
            #expect(s3 == 64 && t3.contains("--task-index"))
            // A malformed TF_CONFIG: exit 64, naming TF_CONFIG and the field.
            let (s4, t4) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["TF_CONFIG={\"cluster\": {\"ps\": [\"a:1\"]}, \"task\": {\"type\": \"ps\", \"index\": 4}}",
                    bin.appendingPathComponent("ps-server").path], seconds: 30)
            #expect(s4 == 64 && t4.contains("TF_CONFIG: task.index"), "\(t4)")
            let (s5, t5) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["TF_CONFIG=not json", bin.appendingPathComponent("worker").path, "--steps", "1"], seconds: 30)
            #expect(s5 == 64 && t5.contains("TF_CONFIG is not JSON"), "\(t5)")
            // The adversarial tester's second round: each of these exited 1 (or started) before.
            let lines: [(String, [String], String)] = [
                ("ps-server", ["--port", "1", "--name", "../../etc/x"], "--name"),
                ("ps-server", ["--port", "22000", "--metrics-port", "22000"], "--metrics-port 22000 is the port this server listens on (--port)"),
                ("worker", ["--partitioner", "fixed_size:2:9", "--steps", "0", "--scaling", "relative"], "--partitioner"),
                ("ps-load", ["run", "--hidden", "0"], "--hidden"),
            ]
            for (executable, arguments, words) in lines {
                let (s, t) = try run(bin.appendingPathComponent(executable).path, arguments)
                #expect(s == 64 && t.contains(words), "\(executable) \(arguments): exit \(s): \(t.suffix(600))")
            }
            let (s7, t7) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["TF_CONFIG={\"cluster\": {\"ps\": [\"127.0.0.1:22001\"]}, \"task\": {\"type\": \"ps\", \"index\": 0}}",
                    bin.appendingPathComponent("ps-server").path, "--bind", "127.0.0.1", "--metrics-port", "22001"], seconds: 30)
            #expect(s7 == 64 && t7.contains("TF_CONFIG's address for this task"), "\(t7)")
            // A port another process holds: the command line's to change, exit 64 naming the port.
            let h = try ProcessHarness()
            let (holder, endpoint) = try h.startServer([], label: "ps-holder")
            let port = String(endpoint.split(separator: ":").last!)
            let (s6, t6) = try run(bin.appendingPathComponent("ps-server").path, ["--port", port])
            #expect(s6 == 64 && t6.contains(port) && t6.contains("choose another --port"), "\(t6)")
            holder.process.terminate()
            h.expectExit(holder, 0, seconds: 30, "the server holding the port")
        }

        @Test("checkpoints load in Python's safetensors package, names, shapes, values and metadata")
        func pythonReadsCheckpoints() throws {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("py-\(UUID().uuidString).safetensors")
                .path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try SafeTensors.write(
                [
                    ("lstm_cell_decoder/rnn/lstm_cell/kernel", [3, 4], (0..<12).map { Float($0) * 0.5 }),
                    ("lstm_cell_decoder/bias_tilde", [1, 2], [-1, 2.25]),
                ], to: path, metadata: ["server": "ps-0"])
            let script = """
                import json, sys
                from safetensors import safe_open
                from safetensors.numpy import load_file
                t = load_file(sys.argv[1])
                with safe_open(sys.argv[1], framework="np") as f:
                    meta = f.metadata()
                print(json.dumps({"shapes": {k: list(v.shape) for k, v in t.items()}, "sums": {k: float(v.sum()) for k, v in t.items()},
                                  "dtypes": sorted({str(v.dtype) for v in t.values()}), "meta": meta}))
                """
            let (status, text) = try run("/usr/bin/env", ["python3", "-c", script, path])
            try #require(
                status == 0, "python3 with the safetensors package is needed (scripts/test.sh installs it): \(text)")
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            #expect(
                (json["shapes"] as! [String: [Int]]) == [
                    "lstm_cell_decoder/rnn/lstm_cell/kernel": [3, 4], "lstm_cell_decoder/bias_tilde": [1, 2],
                ])
            #expect((json["sums"] as! [String: Double])["lstm_cell_decoder/rnn/lstm_cell/kernel"] == 33)
            #expect((json["dtypes"] as! [String]) == ["float32"])
            #expect((json["meta"] as! [String: String]) == ["server": "ps-0"])
        }
    }
}
