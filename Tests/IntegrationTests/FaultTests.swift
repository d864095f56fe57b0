import Foundation
import SafeTensors
import Testing
import Transport
import Wire
import ZeroMQ

extension Integration {
    /// Faults injected into real processes on loopback: killed servers and workers, repeated signals, re-sent
    /// pushes. Each test prints one line of figures: the fault, the time to recover, updates lost, and the
    /// final held-out ratio next to an undisturbed run where there is one.
    @Suite("Faults", .serialized)
    struct FaultTests {
        /// The held-out ratio a worker printed.
        static func ratio(_ output: String) -> Double? {
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("held-out MSE") }) else { return nil }
            let words = line.split(separator: " ")
            return words.firstIndex(of: "ratio").flatMap { Double(words[$0 + 1]) }
        }

        /// A figure from a worker's "recoveries:" line: (recovery seconds, updates lost).
        static func recovery(_ output: String) -> (Double, Int) {
            guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("recoveries:") }) else { return (0, 0) }
            let words = line.split(separator: " ")
            let seconds = words.firstIndex(of: "in").flatMap { Double(words[$0 + 1]) } ?? 0
            let lost = words.firstIndex(of: "servers:").flatMap { Int(words[$0 + 1].trimmingCharacters(in: .punctuationCharacters)) } ?? 0
            return (seconds, lost)
        }

        /// Starts a server on a given port (a restart), waiting (bounded) until it serves.
        func restartServer(_ h: ProcessHarness, port: String, _ args: [String], label: String) throws -> ProcessHarness.Running {
            let r = try h.start("ps-server", ["--port", port, "--name", label.components(separatedBy: "#")[0]] + args, label: label)
            #expect(h.waitFor(r, seconds: 20, "\(label) to serve again") { $0.contains("serving") })
            return r
        }

        /// Two servers and two workers; `fault` runs once worker 0 has reached step 200. Returns the workers' ratios.
        func cluster(mode: String, steps: Int, label: String, fault: ((ProcessHarness, [(ProcessHarness.Running, String)], String) throws -> Void)?)
            throws -> (ratios: [Double], outputs: [String])
        {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let serverArgs = ["--mode", mode, "--learning-rate", "0.01", "--checkpoint-dir", ckpt, "--checkpoint-every", "25"]
            let servers = try (0..<2).map { i in try h.startServer(serverArgs, label: "ps-\(i)") }
            let ps = servers.map(\.1).joined(separator: ",")
            var args = Small.args(horizon: 5, steps: steps)
            args[args.firstIndex(of: "--log-every")! + 1] = "100"
            let workers = try (0..<2).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "2", "--recovery-timeout", "60"] + args, label: "\(label)-w\(i)")
            }
            if let fault {
                #expect(h.waitFor(workers[0], seconds: 60, "worker 0 at step 200") { $0.contains("step 200/") })
                try fault(h, servers, ckpt)
            }
            var ratios: [Double] = []
            for (i, w) in workers.enumerated() {
                #expect(h.wait(w, seconds: 180, "worker \(i)") == 0, "\(w.output.suffix(3000))")
                ratios.append(Self.ratio(w.output) ?? .nan)
            }
            return (ratios, workers.map(\.output))
        }

        @Test("kill -9 of one of two servers mid-run, restarted from its checkpoint: no worker restarts", arguments: ["async", "sync"])
        func killServer(mode: String) throws {
            let steps = 800
            let calm = try cluster(mode: mode, steps: steps, label: "calm", fault: nil)
            var restartedAt = Date()
            let hurt = try cluster(mode: mode, steps: steps, label: "hurt") { h, servers, ckpt in
                let (victim, endpoint) = servers[0]
                kill(victim.process.processIdentifier, SIGKILL)
                victim.process.waitUntilExit()
                restartedAt = Date()
                let port = String(endpoint.split(separator: ":").last!)
                let again = try restartServer(
                    h, port: port, ["--mode", mode, "--learning-rate", "0.01", "--checkpoint-dir", ckpt, "--checkpoint-every", "25"],
                    label: "ps-0#again")
                #expect(again.output.contains("restored 4 variables") || again.output.contains("restored 3 variables"), "\(again.output)")
            }
            let (seconds, lost) = Self.recovery(hurt.outputs[0])
            #expect(hurt.outputs.allSatisfy { $0.contains("recoveries: 1") }, "\(hurt.outputs[0].suffix(1500))")
            let calmRatio = calm.ratios.reduce(0, +) / 2
            let hurtRatio = hurt.ratios.reduce(0, +) / 2
            // Issue 11's bound: the final ratio within 15% of an undisturbed run.
            #expect(hurtRatio <= calmRatio * 1.15, "held-out ratio \(hurtRatio) after the fault, \(calmRatio) without")
            print(
                String(
                    format: "fault: kill -9 ps 0 of 2 (%@) | recovered %.2f s after last heard (restart %.2f s ago at the end) | updates lost %d | held-out ratio %.3f vs undisturbed %.3f",
                    mode, seconds, Date().timeIntervalSince(restartedAt), lost, hurtRatio, calmRatio))
        }

        @Test("kill -9 of one of three sync workers with --backup-workers 1: the other two finish, the server exits")
        func killWorkerSync() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--mode", "sync", "--backup-workers", "1", "--worker-timeout", "3", "--checkpoint-dir", ckpt], label: "ps-b")
            var args = Small.args(steps: 400)
            args[args.firstIndex(of: "--log-every")! + 1] = "50"
            let workers = try (0..<3).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "3"] + args, label: "w\(i)")
            }
            #expect(h.waitFor(workers[2], seconds: 60, "worker 2 at step 50") { $0.contains("step 50/") })
            kill(workers[2].process.processIdentifier, SIGKILL)
            let killed = Date()
            for i in 0..<2 { #expect(h.wait(workers[i], seconds: 120, "worker \(i)") == 0, "\(workers[i].output.suffix(2000))") }
            let finished = Date().timeIntervalSince(killed)
            #expect(h.wait(server, seconds: 30, "ps-server to exit once the others are done and the killed one lost") == 0)
            #expect(server.output.contains("worker lost"), "\(server.output.suffix(2000))")
            print(
                String(
                    format: "fault: kill -9 worker 2 of 3 (sync, 1 backup) | others finished %.1f s later | updates lost 0 | held-out ratio %.3f",
                    finished, Self.ratio(workers[0].output) ?? .nan))
        }

        @Test("a killed worker restarted with the same index rejoins, resumes from the servers' step, and finishes")
        func restartWorker() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--mode", "async", "--worker-timeout", "20"], label: "ps-r")
            var args = Small.args(steps: 3000)  // long enough (over 10 s here) for the twin to be refused and the restart
            args[args.firstIndex(of: "--log-every")! + 1] = "50"
            let w0 = try h.start("worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2"] + args, label: "w0")
            let w1 = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + args, label: "w1")
            #expect(h.waitFor(w1, seconds: 60, "worker 1 at step 100") { $0.contains("step 100/") })
            // A second process claiming a live worker's index is refused, naming both.
            var twinArgs = args
            twinArgs[twinArgs.firstIndex(of: "--timeout")! + 1] = "3"  // how long it retries a held index
            let twin = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + twinArgs, label: "twin")
            #expect(h.wait(twin, seconds: 60, "the duplicate index to be refused") == 77, "\(twin.output)")
            #expect(twin.output.contains("task index 1 is held by worker 1"), "\(twin.output)")
            kill(w1.process.processIdentifier, SIGKILL)
            let killed = Date()
            let again = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + args, label: "w1-again")
            #expect(h.wait(again, seconds: 120, "the restarted worker") == 0, "\(again.output.suffix(2000))")
            #expect(again.output.contains("resumed at step"), "\(again.output.suffix(2000))")
            #expect(h.wait(w0, seconds: 120, "worker 0") == 0)
            #expect(h.wait(server, seconds: 30, "ps-server") == 0)
            let resumed = again.output.split(separator: "\n").first { $0.hasPrefix("resumed at step") } ?? ""
            print(
                String(
                    format: "fault: kill -9 worker 1 of 2 and restart it (async) | rejoined and finished %.1f s after the kill | %@ | held-out ratio %.3f",
                    Date().timeIntervalSince(killed), String(resumed), Self.ratio(again.output) ?? .nan))
        }

        @Test("the same push sent twice by a raw protocol client changes the variables once")
        func duplicatePush() throws {
            let h = try ProcessHarness()
            let (server, endpoint) = try h.startServer(["--optimizer", "sgd", "--learning-rate", "1", "--keep-serving"], label: "ps-d")
            let context = try Context()
            let socket = try Socket(context, .dealer)
            try socket.setReceiveTimeout(milliseconds: 5000)
            try socket.connect("tcp://\(endpoint)")
            let me: UInt64 = 4242
            func call(_ kind: MessageKind, id: UInt64, step: UInt64 = 0, _ body: [UInt8], _ tensors: [[Float]] = []) throws -> Envelope {
                let frames = Envelope.frames(
                    Header(kind: kind, workerID: 0, requestID: id, step: step, incarnation: me), body: body, tensors: tensors.map { Frame(floats: $0) })
                try socket.send(frames.map(\.message))
                return try Envelope(frames: try socket.receive().map { Frame($0) }[...])
            }
            #expect(try call(.hello, id: 1, Body.encode(Hello(workerName: "raw", numWorkers: 1))).header.kind == .welcome)
            let spec = VariableSpec(name: "v", shape: [2], dtype: "float32", initializer: InitializerSpec(kind: "zeros"), seed: 0)
            #expect(try call(.register, id: 2, Body.encode(Register(variables: [spec]))).header.kind == .registered)
            let push = { try call(.push, id: 3, step: 1, Body.encode(Names(names: ["v"])), [[1, 2]]) }
            let first = try push()
            let second = try push()
            #expect(first.header.kind == .pushed && second.header.kind == .pushed && second.header.requestID == 3)
            #expect(try second.decode(Pushed.self).duplicate)
            let values = try call(.pull, id: 4, step: 2, Body.encode(Names(names: ["v"])))
            #expect(values.tensors.first?.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == [-1, -2])
            socket.close()
            server.process.terminate()
            #expect(h.wait(server, seconds: 15, "ps-server to stop") == 0)
            print("fault: the same push twice (raw client) | applied once: v = [-1, -2] | duplicates acknowledged as such")
        }

        @Test("SIGTERM to a server 10 times at random moments: 10 complete checkpoints, 10 exits with 0, training resumes each time")
        func repeatedSigterm() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let args = ["--checkpoint-dir", ckpt, "--learning-rate", "0.01"]
            let (first, endpoint) = try h.startServer(args, label: "ps-t")
            let port = String(endpoint.split(separator: ":").last!)
            var workerArgs = Small.args(steps: 100_000)
            workerArgs[workerArgs.firstIndex(of: "--log-every")! + 1] = "1000000"
            let worker = try h.start("worker", ["--ps", endpoint, "--num-workers", "1", "--recovery-timeout", "60"] + workerArgs, label: "w")
            var server = first
            var rng = SystemRandomNumberGenerator()
            var updates: [Int] = []
            for round in 0..<10 {
                Thread.sleep(forTimeInterval: Double.random(in: 0.3...1.2, using: &rng))
                server.process.terminate()
                #expect(h.wait(server, seconds: 30, "ps-server to stop on SIGTERM (round \(round))") == 0, "\(server.output.suffix(1500))")
                let newest = try #require(newestCheckpoints(ckpt).first)
                let meta = try SafeTensors.metadata(newest)
                let tensors = try SafeTensors.read(newest)
                #expect(tensors.keys.filter { !$0.hasPrefix("optimizer/") }.count == 7, "round \(round): \(newest)")
                updates.append(Int(meta["updates"] ?? "") ?? -1)
                server = try restartServer(h, port: port, args, label: "ps-t#\(round)")
                // The restart resumes from exactly that checkpoint.
                #expect(server.output.contains("restored 7 variables at update \(updates.last!) from \(newest)"), "\(server.output.prefix(1500))")
            }
            #expect(updates == updates.sorted() && updates.last! > updates.first!, "updates at each stop: \(updates)")
            worker.process.terminate()
            #expect(h.wait(worker, seconds: 60, "the worker to stop") == 0, "\(worker.output.suffix(2000))")
            #expect(h.wait(server, seconds: 30, "the last server to exit") == 0)
            print("fault: SIGTERM ps 10 times | 10 complete checkpoints, 10 exits 0 | updates at each stop: \(updates)")
        }
    }
}
