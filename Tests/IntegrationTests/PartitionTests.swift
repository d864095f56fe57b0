import Foundation
import Testing

extension Integration {
    /// TF1 partitioned variables end to end, with real processes: parts spread over servers, tensors past the
    /// frame limit in chunks, checkpoints keyed by part with their slices, and restore across partitionings.
    @Suite("Partitioned variables", .serialized)
    struct PartitionTests {
        /// The held-out line a worker prints ("held-out MSE … ratio …"), the numbers of its model.
        static func heldOut(_ output: String) -> String? {
            output.split(separator: "\n").last { $0.hasPrefix("held-out MSE") }.map(String.init)
        }

        @Test(
            "a model in parts on 3 servers trains over 1 KiB frames; its checkpoint restores into 2 servers with another partitioning and into none, value for value; Python puts the parts back together"
        )
        func acrossPartitionings() throws {
            let h = try ProcessHarness()
            let first = h.directory.appendingPathComponent("first").path
            let second = h.directory.appendingPathComponent("second").path
            // Frames of at most 1 KiB: the 9 × 32 kernels (1,152 bytes) cross in chunks, both ways.
            let small = ["--max-message-bytes", "1024"]
            let servers = try (0..<3).map { i in
                try h.startServer(["--checkpoint-dir", first, "--num-workers", "1"] + small, label: "a\(i)")
            }
            let trainer = try h.start(
                "worker",
                ["--ps", servers.map(\.1).joined(separator: ","), "--partitioner", "fixed_size:2"] + small + Small.args(steps: 40),
                label: "train")
            h.expectExit(trainer, 0, seconds: 300, "the partitioned worker")
            for (i, s) in servers.enumerated() { h.expectExit(s.0, 0, seconds: 60, "server a\(i) after the worker") }
            #expect(trainer.output.contains("exchange:"), "\(trainer.output.suffix(2000))")

            // The checkpoint alone, read into an unpartitioned model in this process: the reference numbers.
            let local = try h.start("worker", ["--restore", first] + Small.args(steps: 0), label: "local")
            h.expectExit(local, 0, seconds: 120, "evaluating the checkpoint without servers")
            let reference = try #require(Self.heldOut(local.output), "\(local.output.suffix(2000))")

            // Into 2 new servers under 3 parts a variable: the values travel in the register's tensor frames.
            let fresh = try (0..<2).map { i in
                try h.startServer(["--checkpoint-dir", second, "--num-workers", "1"] + small, label: "b\(i)")
            }
            let restored = try h.start(
                "worker",
                ["--ps", fresh.map(\.1).joined(separator: ","), "--partitioner", "fixed_size:3", "--restore", first] + small
                    + Small.args(steps: 0),
                label: "restored")
            h.expectExit(restored, 0, seconds: 120, "the worker restoring into 2 servers")
            for (i, s) in fresh.enumerated() { h.expectExit(s.0, 0, seconds: 60, "server b\(i)") }
            #expect(Self.heldOut(restored.output) == reference, "\(h.everyOutput())")
            // And back out of those servers' checkpoints into no partitioning at all.
            let back = try h.start("worker", ["--restore", second] + Small.args(steps: 0), label: "back")
            h.expectExit(back, 0, seconds: 120, "evaluating the second checkpoint")
            #expect(Self.heldOut(back.output) == reference, "\(back.output.suffix(2000))")

            // Any reader can put the parts back: Python, from the slice records alone.
            let script = """
                import json, sys, glob, numpy as np
                from safetensors import safe_open
                wholes, filled = {}, {}
                for path in sys.argv[1:]:
                    with safe_open(path, framework="np") as f:
                        meta = json.loads(f.metadata()["variables"])
                        for m in meta:
                            s = m.get("slice")
                            if s is None: continue
                            t = f.get_tensor(m["name"])
                            w = wholes.setdefault(s["fullName"], np.zeros(s["fullShape"], np.float32))
                            w[tuple(slice(o, o + n) for o, n in zip(s["offset"], t.shape))] = t
                            filled[s["fullName"]] = filled.get(s["fullName"], 0) + t.size
                print(json.dumps({k: [list(v.shape), filled[k] == v.size] for k, v in sorted(wholes.items())}))
                """
            let (status, text) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["python3", "-c", script] + newestCheckpoints(first), seconds: 60)
            try #require(status == 0, "python3 with safetensors and numpy: \(text)")
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: [Any]]
            #expect(json.count == 7, "\(text)")
            #expect((json["lstm_cell_decoder/rnn/lstm_cell/kernel"]?[0] as? [Int]) == [13, 32], "\(text)")
            #expect(json.values.allSatisfy { ($0[1] as? Bool) == true }, "every whole covered: \(text)")
            print("partitions: 3 servers, fixed_size:2, 1 KiB frames; restored into 2 servers as fixed_size:3 and into none: \(reference)")
        }

        @Test("a worker that partitions otherwise is refused at registration (exit 77), naming --partitioner")
        func disagreeing() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--num-workers", "2"], label: "ps")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let first = try h.start(
                "worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2", "--partitioner", "fixed_size:2"] + args, label: "w0")
            try #require(h.waitFor(first, seconds: 120, "the partitioned worker training") { $0.contains("step 10/") })
            let other = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + args, label: "w1")
            h.expectExit(other, 77, seconds: 60, "the worker without a partitioner")
            #expect(other.output.contains("--partitioner") && other.output.contains("fixed_size:2"), "\(other.output.suffix(2000))")
            first.process.terminate()
            h.expectExit(first, 0, seconds: 120, "the partitioned worker on SIGTERM")
            server.process.terminate()
            h.expectExit(server, 0, seconds: 30, "ps-server")
        }
    
        @Test("a worker that lists the servers in another order is refused (exit 77): the model is not split into two copies")
        func serverOrder() throws {
            let h = try ProcessHarness()
            let (s0, ps0) = try h.startServer(["--num-workers", "2", "--name", "ps-0"], label: "ps-0")
            let (s1, ps1) = try h.startServer(["--num-workers", "2", "--name", "ps-1"], label: "ps-1")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let first = try h.start("worker", ["--ps", "\(ps0),\(ps1)", "--task-index", "0", "--num-workers", "2"] + args, label: "w0")
            try #require(h.waitFor(first, seconds: 120, "the first worker training") { $0.contains("step 10/") })
            let other = try h.start("worker", ["--ps", "\(ps1),\(ps0)", "--task-index", "1", "--num-workers", "2"] + args, label: "w1")
            h.expectExit(other, 77, seconds: 60, "the worker listing the servers in another order")
            #expect(other.output.contains("same order") && other.output.contains("server 1 of 2"), "\(other.output.suffix(2000))")
            first.process.terminate()
            h.expectExit(first, 0, seconds: 120, "the first worker on SIGTERM")
            for (s, name) in [(s0, "ps-0"), (s1, "ps-1")] {
                s.process.terminate()
                h.expectExit(s, 0, seconds: 30, name)
            }
        }
    }
}
