import Datasets
import Exchange
import Foundation
import Model
import Optimizers
import SafeTensors
import Testing
import Training
import Transport
import VariableScopes
import Wire
import ZeroMQ

extension Integration {
    /// Real `ps-server` and `worker` processes on loopback.
    @Suite("Cluster of real processes", .serialized)
    struct ClusterTests {
        static let config = ModelConfig(batch: 4, window: 6, horizon: 3, inputDim: 1, hidden: 8, hidden2: 5)
        static let sevenNames = [
            "encoder/rnn/lstm_cell/kernel", "encoder/rnn/lstm_cell/bias", "lstm_cell_decoder/rnn/lstm_cell/kernel",
            "lstm_cell_decoder/rnn/lstm_cell/bias", "lstm_cell_decoder/weights_tilde", "lstm_cell_decoder/bias_tilde",
            "lstm_cell_decoder/weights_target",
        ]

        /// The model variables of each server's newest checkpoint file in `dir` (`<server>-<sequence>.safetensors`;
        /// optimizer slots, under `optimizer/`, left out).
        func checkpoint(_ dir: String) throws -> [String: SafeTensors.Entry] {
            var all: [String: SafeTensors.Entry] = [:]
            for f in newestCheckpoints(dir) {
                for (k, v) in try SafeTensors.read(f) where !k.hasPrefix("optimizer/") {
                    #expect(all[k] == nil, "\(k) is on two servers")
                    all[k] = v
                }
            }
            return all
        }

        @Test("sync: 2 workers equal one process applying their averaged gradients, bit for bit")
        func syncEquivalence() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--mode", "sync", "--learning-rate", "0.01", "--checkpoint-dir", ckpt], label: "ps-sync")
            let steps = 6
            let workers = try (0..<2).map { i in
                try h.start(
                    "worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "2"] + Small.args(steps: steps),
                    label: "w\(i)")
            }
            for (i, w) in workers.enumerated() { #expect(h.wait(w, seconds: 120, "worker \(i)") == 0, "\(w.output)") }
            #expect(h.wait(server, seconds: 30, "ps-server to exit once both workers are done") == 0)
            let saved = try checkpoint(ckpt)
            #expect(saved.keys.sorted() == Self.sevenNames.sorted())

            // Replay in this process: the same initial values, batches and averaged updates.
            let dataset = try Dataset(try BuiltinSeries.synthetic.load(seed: 3), window: 6, horizon: 3)
            let model = try Seq2Seq(Self.config, graph: Graph(seed: 3))
            var samplers = (0..<2).map {
                BatchSampler(shard: shard(dataset.train.count, index: $0, of: 2), seed: 3, taskIndex: $0)
            }
            let optimizer = OptimizerConfig(kind: .adam, learningRate: 0.01)
            let slots = model.variables.map { OptimizerSlots(count: $0.count) }
            var indices = [Int](repeating: 0, count: 4)
            for _ in 0..<steps {
                var grads: [[[Float]]] = []
                for w in 0..<2 {
                    samplers[w].next(&indices)
                    dataset.train.fill(indices, x: model.x.value, y: model.y.value)
                    model.forwardBackward()
                    grads.append(model.variables.map { Array($0.gradient) })
                }
                for (k, v) in model.variables.enumerated() {
                    var sum = grads[0][k]
                    for j in sum.indices { sum[j] += grads[1][k][j] }
                    for j in sum.indices { sum[j] *= 0.5 }
                    sum.withUnsafeBufferPointer { slots[k].apply(optimizer, value: v.value, gradient: $0) }
                }
            }
            for v in model.variables {
                #expect(saved[v.name]?.scalars == Array(v.value), "\(v.name) differs from the one-process replay")
            }
        }

        @Test("async: 2 servers and 3 workers converge; the servers hold exactly the seven variables")
        func asyncConvergence() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let servers = try (0..<2).map { i in
                try h.startServer(
                    ["--mode", "async", "--learning-rate", "0.01", "--checkpoint-dir", ckpt], label: "ps-\(i)")
            }
            let ps = servers.map(\.1).joined(separator: ",")
            let workers = try (0..<3).map { i in
                try h.start(
                    "worker",
                    ["--ps", ps, "--task-index", "\(i)", "--num-workers", "3"] + Small.args(horizon: 5, steps: 600),
                    label: "w\(i)")
            }
            for (i, w) in workers.enumerated() { #expect(h.wait(w, seconds: 180, "worker \(i)") == 0, "\(w.output)") }
            for (s, _) in servers { #expect(h.wait(s, seconds: 30, "ps-server to exit") == 0) }
            let saved = try checkpoint(ckpt)
            #expect(saved.keys.sorted() == Self.sevenNames.sorted())
            #expect(saved["lstm_cell_decoder/rnn/lstm_cell/kernel"]?.shape == [5 + 8, 32])
            #expect(newestCheckpoints(ckpt).count == 2)

            func ratio(_ extra: [String], _ label: String) throws -> Double {
                let r = try h.start("worker", extra + Small.args(horizon: 5, steps: 0), label: label)
                #expect(h.wait(r, seconds: 60, label) == 0, "\(r.output)")
                let line = try #require(r.output.split(separator: "\n").first { $0.hasPrefix("held-out MSE") })
                let words = line.split(separator: " ")
                return Double(words[words.firstIndex(of: "ratio")! + 1]) ?? .nan
            }
            let before = try ratio([], "untrained")
            let after = try ratio(["--restore", ckpt], "restored")
            // Measured here: 1.00 untrained, 0.63 after training (the printed line below); 0.85 asks for a clear
            // improvement with room for async interleaving, not for a particular figure.
            #expect(after < 0.85 * before, "held-out ratio to naive: \(after) after training, \(before) before")
            print("async convergence: held-out ratio to naive \(before) untrained, \(after) trained")
        }

        @Test(
            "workers whose shards end at different steps do not hang the others",
            arguments: [["--mode", "sync"], ["--mode", "async", "--staleness", "1"]])
        func unevenEnds(mode: [String]) throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(mode + ["--checkpoint-dir", ckpt], label: "ps-uneven")
            let workers = try [4, 15, 9].enumerated().map { i, steps in
                try h.start(
                    "worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "3"] + Small.args(steps: steps),
                    label: "w\(i)")
            }
            for (i, w) in workers.enumerated() { #expect(h.wait(w, seconds: 120, "worker \(i)") == 0, "\(w.output)") }
            #expect(h.wait(server, seconds: 30, "ps-server to exit") == 0, "\(server.output.suffix(2000))")
            #expect(server.output.contains("every worker is done"))
        }

        @Test("a shape conflict between two workers is refused with the variable, both shapes and both workers")
        func shapeConflict() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(["--mode", "async", "--checkpoint-dir", ckpt], label: "ps-conflict")
            let a = try h.start(
                "worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2"] + Small.args(steps: 5), label: "a")
            #expect(h.wait(a, seconds: 60, "worker 0") == 0, "\(a.output)")
            var other = Small.args(steps: 5)
            other[other.firstIndex(of: "--hidden")! + 1] = "6"
            let b = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + other, label: "b")
            #expect(h.wait(b, seconds: 60, "worker 1") != 0)
            let out = b.output
            #expect(out.contains("refused register"), "\(out)")
            #expect(
                out.contains("encoder/rnn/lstm_cell/kernel") && out.contains("(9, 32)") && out.contains("(7, 24)"), "\(out)"
            )
            #expect(out.contains("worker 0") && out.contains("worker 1"), "\(out)")
            // The server kept serving; SIGTERM stops it cleanly, with its checkpoint.
            #expect(server.process.isRunning)
            server.process.terminate()
            #expect(h.wait(server, seconds: 15, "ps-server to stop on SIGTERM") == 0)
            #expect(newestCheckpoints(ckpt).count == 1)
        }

        @Test("SIGTERM stops a worker cleanly: it finishes its step, says done, and the server writes its checkpoint")
        func workerSigterm() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(["--checkpoint-dir", ckpt], label: "ps-term")
            var args = Small.args(steps: 10_000_000)
            args[args.firstIndex(of: "--log-every")! + 1] = "20"
            let w = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + args, label: "w")
            // Wait (bounded) until it has trained some steps, then stop it.
            #expect(h.waitFor(w, seconds: 30, "the worker's progress at step 20") { $0.contains("step 20/") })
            w.process.terminate()
            #expect(h.wait(w, seconds: 30, "the worker to stop on SIGTERM") == 0, "\(w.output)")
            #expect(w.output.contains("signal received") && w.output.contains("held-out MSE"), "\(w.output)")
            #expect(h.wait(server, seconds: 30, "ps-server to exit after the worker's done") == 0)
            #expect(newestCheckpoints(ckpt).count == 1)
        }

        /// Sends SIGTERM to one thread of `pid` that is neither the signal thread nor blocking SIGTERM (one a
        /// library started before main: OpenBLAS's), with tgkill; exits 3 when there is none.
        static let termForeignThread = """
            import ctypes, os, platform, signal, sys
            pid = int(sys.argv[1])
            number = {"x86_64": 234, "aarch64": 131}[platform.machine()]
            libc = ctypes.CDLL(None, use_errno=True)
            for tid in sorted(os.listdir("/proc/%d/task" % pid)):
                base = "/proc/%d/task/%s/" % (pid, tid)
                comm = open(base + "comm").read().strip()
                blocked = int([l for l in open(base + "status") if l.startswith("SigBlk:")][0].split()[1], 16)
                if comm != "signals" and not blocked & (1 << (signal.SIGTERM - 1)):
                    print("SIGTERM to thread", tid, comm, "->", libc.syscall(number, pid, int(tid), signal.SIGTERM), flush=True)
                    sys.exit(0)
            print("no thread but the signal thread takes SIGTERM", flush=True)
            sys.exit(3)
            """

        @Test("a SIGTERM the kernel hands to a library's thread (OpenBLAS's, started before main) stops the worker cleanly too")
        func sigtermOnForeignThread() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer([], label: "ps-term2")
            var args = Small.args(steps: 10_000_000)
            args[args.firstIndex(of: "--log-every")! + 1] = "20"
            let w = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + args, label: "w", unblockedSignals: true)
            try #require(h.waitFor(w, seconds: 60, "the worker's progress at step 20") { $0.contains("step 20/") })
            let (status, out) = try ProcessHarness.runToCompletion(
                "/usr/bin/env", ["python3", "-c", Self.termForeignThread, "\(w.process.processIdentifier)"], seconds: 30)
            try #require(status == 0, "\(out)")
            #expect(h.wait(w, seconds: 30, "the worker to stop on SIGTERM") == 0, "\(out)\n\(w.output.suffix(1500))")
            #expect(w.output.contains("signal received"), "\(w.output.suffix(1500))")
            #expect(h.wait(server, seconds: 30, "ps-server to exit after the worker's done") == 0)
            print("SIGTERM on a foreign thread: \(out.trimmingCharacters(in: .whitespacesAndNewlines)); the worker stopped with exit 0")
        }

        @Test("a worker started with SIGHUP and SIGINT ignored (nohup, a background job) lives through SIGHUP and stops cleanly on SIGINT")
        func ignoredAtStart() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer([], label: "ps-hup")
            var args = Small.args(steps: 10_000_000)
            args[args.firstIndex(of: "--log-every")! + 1] = "20"
            let w = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + args, label: "w", ignoring: [SIGHUP, SIGINT])
            try #require(h.waitFor(w, seconds: 60, "the worker's progress at step 20") { $0.contains("step 20/") })
            kill(w.process.processIdentifier, SIGHUP)
            // Still training 40 steps later: SIGHUP did not end it.
            let target = (LivenessTests.lastStep(w.output) / 20 + 2) * 20
            #expect(h.waitFor(w, seconds: 60, "the worker at step \(target) after SIGHUP") { $0.contains("step \(target)/") })
            kill(w.process.processIdentifier, SIGINT)
            #expect(h.wait(w, seconds: 30, "the worker to stop on SIGINT") == 0, "\(w.output.suffix(1500))")
            #expect(w.output.contains("signal=SIGINT") || w.output.contains("SIGINT"), "\(w.output.suffix(1500))")
            #expect(h.wait(server, seconds: 30, "ps-server to exit after the worker's done") == 0)
        }

        @Test("CURVE with admission: a listed key trains; an unlisted key is refused at once; a wrong server key fails clearly")
        func curve() throws {
            let h = try ProcessHarness()
            let keys = { try h.curveKeys($0) }
            let (server, worker, stranger) = (try keys("ps"), try keys("worker"), try keys("stranger"))
            let authorized = h.directory.appendingPathComponent("authorized_keys").path
            try ("# the job's workers\n" + String(contentsOfFile: worker + ".public", encoding: .utf8)).write(
                toFile: authorized, atomically: true, encoding: .utf8)
            let (ps, endpoint) = try h.startServer(
                ["--curve-secret-file", server + ".secret", "--curve-authorized-keys", authorized, "--keep-serving"],
                label: "ps-curve")
            let good = try h.start(
                "worker",
                ["--ps", endpoint, "--num-workers", "1", "--curve-server-key", server + ".public", "--curve-secret-file", worker + ".secret"]
                    + Small.args(steps: 5), label: "good")
            #expect(h.wait(good, seconds: 60, "the worker with an admitted key") == 0, "\(good.output)")
            // A key pair the server does not list: refused at the handshake and told so, exit 77. Its --timeout
            // (60 s) would end it with 138 and no mention of the key: 77 and the message show it was told.
            let refused = try h.start(
                "worker",
                ["--ps", endpoint, "--num-workers", "1", "--curve-server-key", server + ".public", "--curve-secret-file", stranger + ".secret"]
                    + Small.args(steps: 5), label: "stranger")
            #expect(h.wait(refused, seconds: 30, "the worker with an unlisted key") == 77, "\(refused.output)")
            #expect(refused.output.contains("refused this worker's CURVE key"), "\(refused.output)")
            let strangerKey = try String(contentsOfFile: stranger + ".public", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // The server logs refusals at its next tick, which may come after the worker has already exited.
            #expect(h.waitFor(ps, seconds: 30, "the server to log the refused key") { $0.contains("refused a peer at the door") && $0.contains(strangerKey) })
            // The wrong server public key: the handshake never completes; the worker gives up with a hint.
            var args = Small.args(steps: 5)
            args[args.firstIndex(of: "--timeout")! + 1] = "3"  // how long it waits for a first answer
            let wrong = try h.start(
                "worker", ["--ps", endpoint, "--num-workers", "1", "--curve-server-key", stranger + ".public"] + args,
                label: "wrong-server-key")
            #expect(h.wait(wrong, seconds: 30, "the worker with the wrong server key") == 138, "\(wrong.output)")
            #expect(wrong.output.contains("not this server's public key"), "\(wrong.output)")
            ps.process.terminate()
            #expect(h.wait(ps, seconds: 15, "ps-server to stop") == 0)
        }

        @Test("--wire-dtype bf16 halves the bytes per step: at most 0.51x the float32 floor")
        func bf16Traffic() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer([], label: "ps-bf16")
            // The anchor's sizes (hidden 64, hidden2 64): headers and names are then a rounding error, as in real use.
            var args = Small.args(steps: 20)
            args[args.firstIndex(of: "--hidden")! + 1] = "64"
            args[args.firstIndex(of: "--hidden2")! + 1] = "64"
            let w = try h.start("worker", ["--ps", ps, "--num-workers", "1", "--wire-dtype", "bf16"] + args, label: "w")
            #expect(h.wait(w, seconds: 60, "the bf16 worker") == 0, "\(w.output)")
            #expect(h.wait(server, seconds: 30, "ps-server") == 0)
            let line = try #require(w.output.split(separator: "\n").first { $0.hasPrefix("traffic:") })
            let ratio = Double(line.split(separator: " ").last!.dropLast()) ?? .nan
            #expect(ratio <= 0.51, "\(line)")  // issue 8's bound
            print("bf16 traffic: \(line)")
        }

        @Test("SIGHUP re-reads the authorized keys: a key added to the file is admitted without a restart")
        func reloadKeys() throws {
            let h = try ProcessHarness()
            let keys = { try h.curveKeys($0) }
            let (server, late) = (try keys("ps"), try keys("late"))
            let authorized = h.directory.appendingPathComponent("authorized_keys").path
            // A file with no key at all is refused at start: list one no worker uses (the server's own public key).
            try ("# no worker yet\n" + String(contentsOfFile: server + ".public", encoding: .utf8)).write(
                toFile: authorized, atomically: true, encoding: .utf8)
            let (ps, endpoint) = try h.startServer(
                ["--curve-secret-file", server + ".secret", "--curve-authorized-keys", authorized, "--keep-serving"], label: "ps-hup")
            let args = ["--ps", endpoint, "--num-workers", "1", "--curve-server-key", server + ".public", "--curve-secret-file", late + ".secret"] + Small.args(steps: 5)
            let first = try h.start("worker", args, label: "before")
            #expect(h.wait(first, seconds: 30, "the worker before its key is listed") == 77, "\(first.output)")
            try ("# the late worker\n" + String(contentsOfFile: late + ".public", encoding: .utf8)).write(
                toFile: authorized, atomically: true, encoding: .utf8)
            kill(ps.process.processIdentifier, SIGHUP)
            #expect(h.waitFor(ps, seconds: 10, "the server to reload its keys") { $0.contains("authorized keys reloaded") })
            let second = try h.start("worker", args, label: "after")
            #expect(h.wait(second, seconds: 60, "the worker after its key is listed") == 0, "\(second.output)")
            ps.process.terminate()
            #expect(h.wait(ps, seconds: 15, "ps-server to stop") == 0)
        }

        @Test("an unreachable server is a clear error within the timeout, not a hang")
        func unreachable() throws {
            let h = try ProcessHarness()
            var args = Small.args(steps: 5)
            args[args.firstIndex(of: "--timeout")! + 1] = "2"
            // Nothing listens there (as when a job's servers have already finished and exited): the worker waits
            // --timeout for a first answer, says nothing answered, and exits retryable (a server may yet come).
            let w = try h.start("worker", ["--ps", "127.0.0.1:9"] + args, label: "lonely")
            h.expectExit(w, 138, seconds: 60, "the worker to give up")
            #expect(w.output.contains("no answer from ps 127.0.0.1:9 (1 of 1 servers) within 2 s (--timeout)"), "\(w.output)")
        }

        @Test("malformed, truncated, oversized, wrong-version and unknown-variable frames do not disturb training")
        func badFrames() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                [
                    "--mode", "async", "--learning-rate", "0.01", "--checkpoint-dir", ckpt,
                    "--max-message-bytes", "1000000", "--keep-serving",
                ], label: "ps-fuzz")
            let steps = 400
            let worker = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + Small.args(steps: steps), label: "w")

            let fuzz = try Fuzzer(endpoint: "tcp://\(ps)")
            let (sent, answered) = try fuzz.run(messages: 300, seconds: 10)
            #expect(sent == 300)
            #expect(
                answered == sent, "every malformed message gets an error reply; server said: \(server.output.suffix(1500))")

            #expect(h.wait(worker, seconds: 120, "worker") == 0, "\(worker.output)")
            // --keep-serving: still up after its only worker is done; SIGTERM writes the checkpoint and exits.
            #expect(server.process.isRunning)
            server.process.terminate()
            #expect(h.wait(server, seconds: 30, "ps-server to stop on SIGTERM") == 0)
            let saved = try checkpoint(ckpt)

            // One async worker with Adam on the server computes what one process does alone.
            let dataset = try Dataset(try BuiltinSeries.synthetic.load(seed: 3), window: 6, horizon: 3)
            let model = try Seq2Seq(Self.config, graph: Graph(seed: 3))
            let trainer = try Trainer(
                model: model, dataset: dataset, options: TrainingOptions(steps: steps, seed: 3),
                exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)), output: { _ in })
            try trainer.train()
            for v in model.variables { #expect(saved[v.name]?.scalars == Array(v.value), "\(v.name) was disturbed") }
        }
    }
}

/// Sends random and mutated messages to a server from its own DEALER and counts the error replies.
final class Fuzzer {
    let context: Context
    let socket: Socket
    var rng = SplitMix64(seed: 99)
    /// Oversized messages sent, each on a connection of its own that ZeroMQ drops: not in `sent`, and no reply.
    private(set) var oversized = 0
    let endpoint: String

    init(endpoint: String) throws {
        context = try Context()
        socket = try Socket(context, .dealer)
        try socket.setRoutingID(Array("fuzzer".utf8))
        try socket.setReceiveTimeout(milliseconds: 100)
        try socket.setReconnectInterval(milliseconds: 50)
        try socket.connect(endpoint)
        self.endpoint = endpoint
    }

    /// Sends a frame over the server's frame limit (its `--max-message-bytes`, and at least the 4 MiB a body may
    /// take) on a connection of its own.
    func sendOversized() throws {
        let big = try Socket(context, .dealer)
        try big.connect(endpoint)
        try big.send([
            Header(kind: .push, workerID: 0, requestID: 1, step: 1, tensorCount: 1).encoded,
            Body.encode(Names(names: ["x"])), [UInt8](repeating: 1, count: 6_000_000),
        ])
        oversized += 1
        // Give libzmq a moment to hand it over before closing (the server drops it either way).
        Thread.sleep(forTimeInterval: 0.05)
        big.close()
    }

    func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }

    func message(_ i: Int) -> [[UInt8]] {
        let valid = Header(kind: .push, workerID: 0, requestID: UInt64(i), step: 1, tensorCount: 1)
        switch i % 9 {
        case 0: return (0..<(1 + i % 4)).map { _ in bytes(Int(rng.next() % 100)) }  // random frames
        case 1: return [Array(valid.encoded.prefix(Int(rng.next() % 39)))]  // truncated header
        case 2:
            var h = Header(kind: .pull, workerID: 0, requestID: UInt64(i))
            h.version = 9
            return [h.encoded, Body.encode(Names(names: []))]  // wrong version
        case 3:
            var raw = valid.encoded
            raw[3] = 200  // unknown kind
            return [raw, []]
        case 4:
            return [
                Header(kind: .pull, workerID: 0, requestID: UInt64(i)).encoded,
                Body.encode(Names(names: ["no/such/variable"])),
            ]
        case 5:  // a gradient of the wrong size for a real variable
            return [valid.encoded, Body.encode(Names(names: ["encoder/rnn/lstm_cell/bias"])), bytes(12)]
        case 6:  // mutated valid header with a body that is not JSON
            var raw = valid.encoded
            let k = Int(rng.next() % 40)
            if k != 3 { raw[k] ^= UInt8(1 + rng.next() % 255) }
            return [raw, bytes(8), bytes(16)]
        case 7:  // header announces more tensors than it carries
            return [
                Header(kind: .push, workerID: 0, requestID: UInt64(i), step: 1, tensorCount: 5).encoded,
                Body.encode(Names(names: [])),
            ]
        default:
            return [Header(kind: .register, workerID: 0, requestID: UInt64(i)).encoded, bytes(30)]
        }
    }

    /// Sends `messages` messages, at most 8 unanswered at a time (a peer that never reads is ignored by the
    /// server, by design), and counts the error replies; returns (sent, error replies received).
    func run(messages: Int, seconds: Double) throws -> (Int, Int) {
        var sent = 0
        var answered = 0
        let deadline = Date().addingTimeInterval(seconds)
        for i in 0..<messages {
            if i % 100 == 50 { try sendOversized() }
            while sent - answered >= 8 && Date() < deadline {
                if let reply = try? socket.receive(), isError(reply) { answered += 1 }
            }
            try socket.send(message(i))
            sent += 1
        }
        while answered < sent && Date() < deadline {
            if let reply = try? socket.receive(), isError(reply) { answered += 1 }
        }
        return (sent, answered)
    }

    func isError(_ frames: [Message]) -> Bool {
        guard let env = try? Envelope(frames: frames.map(Frame.init)[...]), env.header.kind == .error else { return false }
        return (try? env.decode(ErrorBody.self)) != nil
    }
}
