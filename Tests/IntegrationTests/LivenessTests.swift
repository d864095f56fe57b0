import Foundation
import Testing
import Wire
import ZeroMQ

extension Integration {
    /// Liveness against real processes on loopback: a paused worker (SIGSTOP), a long step, a server whose
    /// incarnation keeps changing. Each test waits on events in the processes' output and prints one line of
    /// figures.
    @Suite("Liveness", .serialized)
    struct LivenessTests {
        /// The last step a worker reported ("step N/…" lines), 0 before any.
        static func lastStep(_ output: String) -> Int {
            let line = output.split(separator: "\n").last { $0.hasPrefix("step ") && $0.contains("/") }
            return line.flatMap { Int($0.dropFirst(5).prefix { $0.isNumber }) } ?? 0
        }

        @Test(
            "a worker paused with SIGSTOP (6, 8 and 20 s, below --worker-timeout) rebinds after SIGCONT and finishes with exit 0",
            arguments: [("async", 6.0), ("async", 8.0), ("async", 20.0), ("sync", 6.0), ("sync", 8.0), ("sync", 20.0)])
        func pause(mode: String, seconds: Double) throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--mode", mode, "--learning-rate", "0.01"], label: "ps-\(mode)")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let workers = try (0..<2).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "2"] + args, label: "w\(i)")
            }
            for (i, w) in workers.enumerated() {
                try #require(h.waitFor(w, seconds: 120, "worker \(i) at step 50") { $0.contains("step 50/") })
            }
            let paused = workers[1]
            kill(paused.process.processIdentifier, SIGSTOP)
            let before = Self.lastStep(paused.output)
            // The pause itself is the fault being injected: its length is the experiment, not a bound on anything.
            Thread.sleep(forTimeInterval: seconds)
            kill(paused.process.processIdentifier, SIGCONT)
            let resumedAt = Date()
            let target = (before / 10 + 10) * 10
            #expect(h.waitFor(paused, seconds: 120, "the paused worker at step \(target)") { $0.contains("step \(target)/") })
            let back = Date().timeIntervalSince(resumedAt)
            for w in workers { w.process.terminate() }
            for (i, w) in workers.enumerated() { h.expectExit(w, 0, seconds: 120, "worker \(i) on SIGTERM") }
            h.expectExit(server, 0, seconds: 30, "ps-server once both are done")
            #expect(!server.output.contains("worker lost"), "\(server.output.suffix(3000))")
            let how =
                paused.output.contains("this connection bound again")
                ? "rebound its connection with a hello"
                : paused.output.contains("connection restored") ? "reconnected" : "went on without a recovery"
            print(
                String(
                    format: "pause: worker 1 of 2 (%@) stopped %.0f s at step %d; 100 steps later %.1f s after SIGCONT; it %@; exit 0",
                    mode, seconds, before, back, how))
        }

        @Test(
            "a server paused with SIGSTOP past --worker-timeout does not count its own absence as the workers' silence",
            arguments: ["sync", "async"])
        func pausedServer(mode: String) throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--mode", mode, "--worker-timeout", "3"], label: "ps-paused-\(mode)")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let workers = try (0..<2).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "2"] + args, label: "w\(i)")
            }
            for (i, w) in workers.enumerated() {
                try #require(h.waitFor(w, seconds: 120, "worker \(i) at step 30") { $0.contains("step 30/") })
            }
            kill(server.process.processIdentifier, SIGSTOP)
            let before = workers.map { Self.lastStep($0.output) }
            // The pause is the fault injected (more than twice the worker timeout): not a bound on anything.
            Thread.sleep(forTimeInterval: 8)
            kill(server.process.processIdentifier, SIGCONT)
            for (i, w) in workers.enumerated() {
                let target = (before[i] / 10 + 5) * 10
                #expect(h.waitFor(w, seconds: 120, "worker \(i) at step \(target) after SIGCONT") { $0.contains("step \(target)/") })
            }
            #expect(server.output.contains("the server did not"), "\(server.output.suffix(3000))")
            #expect(!server.output.contains("worker lost"), "\(server.output.suffix(3000))")
            for w in workers { w.process.terminate() }
            for (i, w) in workers.enumerated() { h.expectExit(w, 0, seconds: 120, "worker \(i) on SIGTERM") }
            h.expectExit(server, 0, seconds: 30, "ps-server once both are done")
            print("paused server (\(mode)): stopped 8 s with --worker-timeout 3; its absence excused, no worker lost, both went on and exited 0")
        }

        @Test("a worker paused while a new process took its index over exits 77 at once on SIGCONT, naming the holder")
        func superseded() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--mode", "async", "--worker-timeout", "20"], label: "ps-superseded")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let job = ["--ps", ps, "--num-workers", "2"]
            let other = try h.start("worker", job + ["--task-index", "0"] + args, label: "w0")
            let old = try h.start("worker", job + ["--task-index", "1"] + args, label: "w1-old")
            for (w, name) in [(other, "worker 0"), (old, "worker 1")] {
                try #require(h.waitFor(w, seconds: 120, "\(name) at step 20") { $0.contains("step 20/") })
            }
            kill(old.process.processIdentifier, SIGSTOP)
            // A new process for index 1: refused while the holder is fresh, admitted once it has been silent
            // past the takeover bound (3 s).
            let new = try h.start("worker", job + ["--task-index", "1"] + args, label: "w1-new")
            // It resumes at the server's step, so any step line says it trains.
            #expect(h.waitFor(new, seconds: 120, "the new worker 1 training") { Self.lastStep($0) > 0 })
            #expect(h.waitFor(server, seconds: 30, "the server to say worker 1 rejoined") { $0.contains("rejoined") })
            kill(old.process.processIdentifier, SIGCONT)
            let resumed = Date()
            h.expectExit(old, 77, seconds: 60, "the superseded worker after SIGCONT")
            let seconds = Date().timeIntervalSince(resumed)
            #expect(old.output.contains("superseded") && old.output.contains("alive"), "\(old.output.suffix(2000))")
            for w in [other, new] { w.process.terminate() }
            h.expectExit(other, 0, seconds: 120, "worker 0 on SIGTERM")
            h.expectExit(new, 0, seconds: 120, "the new worker 1 on SIGTERM")
            h.expectExit(server, 0, seconds: 30, "ps-server once both are done")
            print(String(format: "superseded: the paused worker 1 exited 77 %.1f s after SIGCONT, its index held by the new process", seconds))
        }

        @Test("a 20 s step is not silence: the server neither loses the worker nor lets another process take its index")
        func longStep() throws {
            let h = try ProcessHarness()
            // A worker timeout well below the step's length: only heartbeats keep the worker in the job.
            let (server, ps) = try h.startServer(["--mode", "async", "--worker-timeout", "8"], label: "ps-long")
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let slow = try h.start(
                "worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2", "--stall-at-step", "30:20"] + args, label: "slow")
            let other = try h.start("worker", ["--ps", ps, "--task-index", "1", "--num-workers", "2"] + args, label: "other")
            try #require(h.waitFor(slow, seconds: 120, "the slow step to begin") { $0.contains("step 30 stalls") })
            // While it stalls, a second process claims its index: refused, since the holder is alive.
            var twinArgs = args
            twinArgs[twinArgs.firstIndex(of: "--timeout")! + 1] = "3"
            let twin = try h.start("worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2"] + twinArgs, label: "twin")
            h.expectExit(twin, 77, seconds: 60, "the process claiming the stalled worker's index")
            #expect(h.waitFor(slow, seconds: 120, "the slow worker past its long step") { $0.contains("step 60/") })
            for w in [slow, other] { w.process.terminate() }
            h.expectExit(slow, 0, seconds: 120, "the slow worker on SIGTERM")
            h.expectExit(other, 0, seconds: 120, "the other worker on SIGTERM")
            h.expectExit(server, 0, seconds: 30, "ps-server")
            #expect(!server.output.contains("worker lost"), "\(server.output.suffix(3000))")
            print("long step: a 20 s step with --worker-timeout 8: not lost, its index not taken (twin exit 77), exit 0")
        }

        @Test("a server whose incarnation changes on every reply ends the worker at --recovery-timeout (exit 138) with flat memory")
        func flappingServer() throws {
            let h = try ProcessHarness()
            let fake = try FlappingServer()
            defer { fake.stop() }
            var args = Small.args(steps: 100)
            args += ["--recovery-timeout", "10"]
            let w = try h.start("worker", ["--ps", fake.endpoint, "--num-workers", "1"] + args, label: "w")
            let started = Date()
            var samples: [Int] = []
            while w.process.isRunning && Date().timeIntervalSince(started) < 120 {
                if let kb = HostileTests.residentKB(w.process.processIdentifier) { samples.append(kb) }
                Thread.sleep(forTimeInterval: 0.25)
            }
            h.expectExit(w, 138, seconds: 10, "the worker facing a flapping server")
            let seconds = Date().timeIntervalSince(started)
            #expect(w.output.contains("gave up on ps \(fake.endpoint)"), "\(w.output.suffix(2000))")
            // Memory: the peak past the first two seconds against the reading at two seconds.
            let early = samples.dropFirst(8).first ?? 0
            let peak = samples.dropFirst(8).max() ?? 0
            #expect(early > 0 && peak - early < 32 * 1024, "worker RSS \(early) kB at 2 s, peak \(peak) kB")
            print(
                "flapping server: \(fake.replies) replies, each from a new incarnation; worker exit 138 after \(String(format: "%.1f", seconds)) s (--recovery-timeout 10); RSS \(early / 1024) MB at 2 s, peak \(peak / 1024) MB"
            )
        }
    }
}

/// A fake server on loopback that answers every request in kind, each reply from a new incarnation: the
/// worst case of a server that keeps restarting.
final class FlappingServer: @unchecked Sendable {
    let endpoint: String
    private let context: Context
    private let socket: Socket
    private let lock = NSLock()
    private var stopping = false
    private var count = 0
    private let finished = DispatchSemaphore(value: 0)

    var replies: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }

    init() throws {
        context = try Context()
        socket = try Socket(context, .router)
        try socket.setLinger(milliseconds: 0)
        try socket.bind("tcp://127.0.0.1:*")
        endpoint = String(try socket.lastEndpoint.dropFirst("tcp://".count))
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        thread.start()
    }

    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        _ = finished.wait(timeout: .now() + 5)
    }

    private func serve() {
        defer { socket.close() }
        while true {
            lock.lock()
            let stop = stopping
            lock.unlock()
            if stop { return }
            guard (try? socket.waitReadable(milliseconds: 50)) == true, let parts = try? socket.receive(dontWait: true), parts.count >= 3,
                let request = try? Envelope(frames: parts.dropFirst().map { Frame($0.bytes) }[...])
            else { continue }
            var header = request.header
            header.incarnation = UInt64.random(in: 1...UInt64.max)
            let frames: [Frame]
            switch request.header.kind {
            case .hello:
                header.kind = .welcome
                frames = Envelope.frames(
                    header,
                    Welcome(
                        server: "flapping", mode: .async, staleness: nil, optimizer: "sgd", backupWorkers: 0, updates: 0, resumeStep: 0,
                        wireDType: .float32, scaling: nil, packed: nil, maxFrameBytes: nil))
            case .register:
                header.kind = .registered
                frames = Envelope.frames(header, Names(names: (try? request.decode(Register.self).variables.map(\.name)) ?? []))
            case .push:
                header.kind = .pushed
                frames = Envelope.frames(header, body: Pushed(outcome: .applied).body)
            default:
                header.kind = .pong
                frames = Envelope.frames(header, Names(names: []))
            }
            try? socket.send([parts[0]] + frames.map(\.message), dontWait: true)
            lock.lock()
            count += 1
            lock.unlock()
        }
    }
}
