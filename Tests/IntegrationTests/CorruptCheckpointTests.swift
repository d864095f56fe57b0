import Foundation
import SafeTensors
import Testing
import Wire

extension Integration {
    /// Checkpoints whose metadata holds numbers out of range: a server must refuse them as corrupt (exit 65,
    /// naming the file) at start, as it does for other damage, rather than trap later on a number it trusted.
    @Suite("Corrupt checkpoints", .serialized)
    struct CorruptCheckpointTests {
        /// Writes a one-variable server checkpoint (`v`, shape [2]) with `numWorkers` and the variable's Adam
        /// `step` as given, where `ps-server --name label --checkpoint-dir dir` looks for it.
        static func writeCheckpoint(dir: String, label: String, numWorkers: String, step: String) throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let metadata = [
                "format": "scoped-trainer-ps/1", "server": label, "mode": "async", "optimizer_kind": "adam",
                "optimizer": "adam", "updates": "3", "step": "0", "sequence": "1", "num_workers": numWorkers,
                "variables": #"[{"name":"v","dtype":"float32","step":\#(step),"registeredBy":"worker 0"}]"#,
                "workers": #"[{"index":0,"incarnation":7,"lastPushRequest":3,"lastPushedStep":3,"done":false}]"#,
            ]
            try SafeTensors.write(
                [("v", [2], [0.5, -0.5]), ("optimizer/v/m", [2], [0, 0]), ("optimizer/v/v", [2], [0, 0])],
                to: "\(dir)/\(label)-00000001.safetensors", metadata: metadata)
        }

        /// Starts a server on the checkpoint and returns its exit status if it exits within 10 s (nil if it serves, or
        /// hangs: the harness stops it, with SIGKILL if SIGTERM is not heard).
        func start(_ h: ProcessHarness, dir: String, label: String) throws -> (ProcessHarness.Running, Int32?) {
            let r = try h.start(
                "ps-server", ["--port", "0", "--name", label, "--checkpoint-dir", dir, "--keep-serving"], label: label)
            let deadline = Date().addingTimeInterval(10)
            while r.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if r.process.isRunning { return (r, nil) }
            // A trap is a signal, not an exit: report it as 128 + signal, as a shell would.
            let status =
                r.process.terminationReason == .uncaughtSignal
                ? 128 + r.process.terminationStatus : r.process.terminationStatus
            return (r, status)
        }

        @Test(
            "a checkpoint whose num_workers is negative, past UInt32 or past any --max-workers is refused as corrupt, not a trap or a hang",
            arguments: ["-1", "5000000000", "4000000000"])
        func workerCountOutOfRange(_ numWorkers: String) throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try Self.writeCheckpoint(dir: dir, label: "ps-bad", numWorkers: numWorkers, step: "3")
            let (server, status) = try start(h, dir: dir, label: "ps-bad")
            #expect(
                status == 65,
                "num_workers \(numWorkers): exit \(status.map(String.init) ?? "none (still serving)"): \(server.output.suffix(1500))"
            )
            #expect(
                server.output.contains("ps-bad-00000001.safetensors") && server.output.contains("corrupt"),
                "\(server.output.suffix(1500))")
            #expect(!server.output.contains("Fatal error"), "\(server.output.suffix(1500))")
        }

        @Test("a checkpoint whose variable step is Int.max is refused as corrupt, not a trap on the first push")
        func adamStepAtIntMax() throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try Self.writeCheckpoint(dir: dir, label: "ps-step", numWorkers: "1", step: "\(Int.max)")
            let (server, status) = try start(h, dir: dir, label: "ps-step")
            #expect(
                status == 65, "exit \(status.map(String.init) ?? "none (still serving)"): \(server.output.suffix(1500))")
            if status == nil {
                // It accepted the checkpoint: one ordinary push must then at least not kill it.
                let port = try #require(
                    server.output.split(separator: "\n").first { $0.contains("serving") }
                        .flatMap { $0.components(separatedBy: "tcp://127.0.0.1:").last?.split(separator: " ").first })
                let raw = try RawWorker(endpoint: "tcp://127.0.0.1:\(port)", index: 0, of: 1)
                _ = try? raw.hello()
                _ = try? raw.call(.push, step: 4, Body.encode(Names(names: ["v"])), tensors: [[0.1, 0.1]])
                raw.close()
                Thread.sleep(forTimeInterval: 0.5)
                #expect(
                    server.process.isRunning,
                    "the server died on a push after restoring step Int.max: \(server.output.suffix(1500))")
                server.process.terminate()
                h.wait(server, seconds: 15, "ps-server to stop")
            }
        }
    }
}
