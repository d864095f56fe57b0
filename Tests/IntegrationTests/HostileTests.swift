import Foundation
import Model
import SafeTensors
import Testing
import Transport
import VariableScopes
import Wire
import ZeroMQ

extension Integration {
    /// Hostile peers against real processes on loopback (issue 12): floods of random and mutated frames, a
    /// client that never reads its replies, a gradient that would overflow the optimizer state, bad command
    /// lines, and the fuzzer's seed corpus replayed. Each test bounds every wait and prints one line of figures.
    @Suite("Hostile peers", .serialized)
    struct HostileTests {
        static let decoderKernel = "lstm_cell_decoder/rnn/lstm_cell/kernel"

        /// The resident set of a process, in kB (`VmRSS` in `/proc/<pid>/status`).
        static func residentKB(_ pid: Int32) -> Int? {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
            else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }

        /// The seconds a worker reported training for ("trained N steps in X s: ...").
        static func trainedSeconds(_ output: String) -> Double? {
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("trained ") }) else { return nil }
            let words = line.split(separator: " ")
            return words.firstIndex(of: "in").flatMap { Double(words[$0 + 1]) }
        }

        /// Checkpoint keys that are neither one of the model's seven variables nor one of their optimizer slots.
        static func strangers(_ dir: String) throws -> [String] {
            let seven = Set(ClusterTests.sevenNames)
            var strange: [String] = []
            for file in newestCheckpoints(dir) {
                for key in try SafeTensors.read(file).keys {
                    if seven.contains(key) { continue }
                    if key.hasPrefix("optimizer/"), let slash = key.lastIndex(of: "/"),
                        seven.contains(String(key[key.index(key.startIndex, offsetBy: 10)..<slash])),
                        ["m", "v", "momentum"].contains(String(key[key.index(after: slash)...]))
                    {
                        continue
                    }
                    strange.append(key)
                }
            }
            return strange
        }

        /// Waits (bounded) until every worker has printed a progress line: they joined and registered.
        func waitTraining(_ h: ProcessHarness, _ workers: [ProcessHarness.Running], step: Int) -> Bool {
            workers.enumerated().allSatisfy { i, w in
                h.waitFor(w, seconds: 90, "worker \(i) at step \(step)") { $0.contains("step \(step)/") }
            }
        }

        @Test(
            "10,000 random and mutated messages from 4 raw connections: server up, workers finish, checkpoint clean, RSS bounded"
        )
        func flood() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--mode", "async", "--learning-rate", "0.01", "--checkpoint-dir", ckpt, "--keep-serving"],
                label: "ps-flood")
            // The workers train until stopped, so the flood overlaps their training whatever the machine's speed.
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--log-every")! + 1] = "50"
            let workers = try (0..<2).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "2"] + args, label: "w\(i)")
            }
            try #require(waitTraining(h, workers, step: 50))
            let pid = server.process.processIdentifier
            var before = 0
            let flood = try Flood(endpoint: "tcp://\(ps)", connections: 4, seed: 12)
            let figures = try flood.run(messages: 10_000, seconds: 240, warmUp: 1000) { before = Self.residentKB(pid) ?? 0 }
            let afterTraffic = Self.residentKB(pid) ?? 0
            let stillTraining = workers.filter(\.process.isRunning).count
            flood.close()
            #expect(figures.sent == 10_000)
            #expect(
                figures.replies == figures.sent, "every hostile message is answered; server: \(server.output.suffix(1500))")
            #expect(server.process.isRunning, "the server stays up: \(server.output.suffix(2000))")
            #expect(stillTraining == 2, "both workers trained through the flood\n\(h.everyOutput())")
            for w in workers { w.process.terminate() }
            for (i, w) in workers.enumerated() { h.expectExit(w, 0, seconds: 120, "worker \(i) on SIGTERM") }
            #expect(server.process.isRunning)
            let after = max(afterTraffic, Self.residentKB(pid) ?? 0)
            #expect(
                before > 0 && after - before < 20 * 1024, "server RSS \(before) kB after warm-up, \(after) kB at the end")
            server.process.terminate()
            #expect(h.wait(server, seconds: 30, "ps-server to stop on SIGTERM") == 0)
            #expect(newestCheckpoints(ckpt).count == 1)
            #expect(try Self.strangers(ckpt) == [], "only the seven variables and their optimizer slots are saved")
            #expect(try Set(ClusterTests().checkpoint(ckpt).keys) == Set(ClusterTests.sevenNames))
            print(
                "hostile flood: \(figures.sent) messages (\(figures.frames) frames) from 4 connections, \(figures.replies) replies "
                    + "(\(figures.errors) errors) in \(String(format: "%.1f", figures.seconds)) s, \(stillTraining) of 2 workers "
                    + "still training at the end | server RSS \(before / 1024) MB after warm-up, \(after / 1024) MB at the end"
            )
        }

        @Test("a client that sends 150 large pulls and never reads them is ignored, and 2 workers train on past it")
        func slowReader() throws {
            let h = try ProcessHarness()
            let (server, ps) = try h.startServer(["--mode", "async", "--keep-serving"], label: "ps-slow")
            // Two workers of a job of 3 train a larger model until stopped; worker index 2 is a raw client that asks
            // for 150 pulls of every variable and never reads. (How much it slows them is a speed figure for a
            // benchmark, not a claim for a test on a machine of unknown speed.)
            var args = Small.args(steps: Small.untilStopped)
            args[args.firstIndex(of: "--hidden")! + 1] = "64"
            args[args.firstIndex(of: "--hidden2")! + 1] = "64"
            args[args.firstIndex(of: "--log-every")! + 1] = "10"
            let workers = try (0..<2).map { i in
                try h.start("worker", ["--ps", ps, "--task-index", "\(i)", "--num-workers", "3"] + args, label: "w\(i)")
            }
            try #require(waitTraining(h, workers, step: 10))
            let reader = try RawWorker(endpoint: "tcp://\(ps)", index: 2, of: 3, receiveHighWaterMark: 1)
            try reader.hello()
            let names = Integration.ClusterTests.sevenNames
            _ = try reader.waitForVariables(names, seconds: 60)
            for k in 0..<150 { try reader.send(.pull, step: UInt64(k), Body.encode(Names(names: names)), dontWait: true) }
            #expect(h.waitFor(server, seconds: 120, "the server to ignore the slow reader") { $0.contains("ignoring a peer that stopped reading") })
            // Each worker trains 50 more steps after the server gave up on the reader.
            for (i, w) in workers.enumerated() {
                let at = w.output.split(separator: "\n").last { $0.hasPrefix("step ") }
                let now = at.flatMap { Int($0.dropFirst(5).prefix { $0.isNumber }) } ?? 0
                let target = (now / 10 + 5) * 10
                #expect(h.waitFor(w, seconds: 180, "worker \(i) at step \(target)") { $0.contains("step \(target)/") })
            }
            for w in workers { w.process.terminate() }
            for (i, w) in workers.enumerated() { h.expectExit(w, 0, seconds: 120, "worker \(i) on SIGTERM") }
            reader.close()
            #expect(server.process.isRunning)
            server.process.terminate()
            h.expectExit(server, 0, seconds: 30, "ps-server on SIGTERM")
            print(
                "slow reader: 150 unread pulls of 233 kB; the server ignored the reader and both workers trained on "
                    + "(\(workers.map { Self.trainedSeconds($0.output).map { String(format: "%.1f s", $0) } ?? "?" }.joined(separator: ", ")) of training)")
        }

        @Test("a push of 3e38 into the decoder kernel is refused as non-finite; the real worker still trains well")
        func overflowingPush() throws {
            let h = try ProcessHarness()
            let ckpt = h.directory.appendingPathComponent("ckpt").path
            let (server, ps) = try h.startServer(
                ["--mode", "async", "--learning-rate", "0.01", "--num-workers", "2", "--checkpoint-dir", ckpt],
                label: "ps-trap")
            var args = Small.args(horizon: 5, steps: 600)
            args[args.firstIndex(of: "--log-every")! + 1] = "20"
            let worker = try h.start("worker", ["--ps", ps, "--task-index", "0", "--num-workers", "2"] + args, label: "w0")

            // The raw client is worker 1 of 2: identity binding would refuse it as anyone else's index.
            let raw = try RawWorker(endpoint: "tcp://\(ps)", index: 1, of: 2)
            try #require(try raw.hello().header.kind == .welcome)
            let names = Integration.ClusterTests.sevenNames
            let values = try raw.waitForVariables(names, seconds: 60)
            let model = try Seq2Seq(
                ModelConfig(batch: 4, window: 6, horizon: 5, inputDim: 1, hidden: 8, hidden2: 5), graph: Graph(seed: 3))
            let specs = model.variables.map {
                VariableSpec(
                    name: $0.name, shape: $0.shape, dtype: "float32", initializer: InitializerSpec(kind: "zeros"), seed: 3)
            }
            #expect(try raw.call(.register, Body.encode(Register(variables: specs))).header.kind == .registered)
            let count = try #require(values[Self.decoderKernel]?.count)
            let reply = try raw.call(
                .push, step: 1, Body.encode(Names(names: [Self.decoderKernel])),
                tensors: [[Float](repeating: 3e38, count: count)])
            #expect(reply.header.kind == .error)
            let error = try reply.decode(ErrorBody.self)
            #expect(error.code == .nonFinite && error.message.contains(Self.decoderKernel), "\(error.message)")
            let unchanged = try raw.pull([Self.decoderKernel])
            #expect(unchanged[Self.decoderKernel]?.allSatisfy(\.isFinite) == true)
            #expect(try raw.call(.done, Body.encode(Names(names: []))).header.kind == .goodbye)
            raw.close()

            #expect(h.wait(worker, seconds: 180, "worker 0") == 0, "\(worker.output.suffix(2000))")
            #expect(
                h.wait(server, seconds: 30, "ps-server to exit once both are done") == 0, "\(server.output.suffix(2000))")
            let ratio = try #require(FaultTests.ratio(worker.output))
            let untrained = try h.start("worker", Small.args(horizon: 5, steps: 0), label: "untrained")
            #expect(h.wait(untrained, seconds: 60, "the untrained evaluation") == 0)
            let before = try #require(FaultTests.ratio(untrained.output))
            #expect(
                ratio < 0.85 * before, "held-out ratio \(ratio) after training beside the refused push, \(before) untrained"
            )
            let saved = try ClusterTests().checkpoint(ckpt)
            #expect(saved[Self.decoderKernel]?.scalars.allSatisfy(\.isFinite) == true)
            print(
                String(
                    format: "trap: push of 3e38 into %@ refused (%@); worker 0 held-out ratio %.3f (untrained %.3f)",
                    Self.decoderKernel, error.code.rawValue, ratio, before))
        }

        /// A bad command line: the executable, its arguments, and words its message must hold.
        struct BadLine: CustomTestStringConvertible, Sendable {
            let executable: String
            let arguments: [String]
            let words: [String]
            var testDescription: String { "\(executable) \(arguments.joined(separator: " "))" }
        }

        static let badLines: [BadLine] = [
            BadLine(executable: "worker", arguments: ["--ps", ""], words: ["--ps"]),
            BadLine(executable: "worker", arguments: ["--ps", ","], words: ["--ps"]),
            BadLine(executable: "worker", arguments: ["--timeout", "nan"], words: ["--timeout"]),
            BadLine(executable: "worker", arguments: ["--timeout", "1e10"], words: ["--timeout"]),
            BadLine(executable: "worker", arguments: ["--log-every", "0", "--logdir", "X"], words: ["--log-every"]),
            BadLine(
                executable: "ps-server", arguments: ["--port", "1", "--learning-rate", "inf"], words: ["--learning-rate"]),
            BadLine(
                executable: "ps-server", arguments: ["--port", "1", "--optimizer", "momentum", "--momentum", "nan"],
                words: ["--momentum"]),
            BadLine(
                executable: "worker", arguments: ["--optimizer", "momentum", "--momentum", "nan"], words: ["--momentum"]),
            BadLine(executable: "worker", arguments: ["--learning-rate", "nan"], words: ["--learning-rate"]),
            BadLine(executable: "worker", arguments: ["--learning-rate", "inf"], words: ["--learning-rate"]),
            BadLine(executable: "worker", arguments: ["--learning-rate", "-1"], words: ["--learning-rate"]),
            BadLine(
                executable: "worker", arguments: ["--data", "@huge", "--column", "v"], words: ["@huge", "'v'", "too large"]),
            BadLine(executable: "ps-server", arguments: ["--port", "1", "--beta1", "1"], words: ["--beta1"]),
            BadLine(executable: "ps-server", arguments: ["--port", "1", "--beta2=-1"], words: ["--beta2"]),
            BadLine(
                executable: "worker", arguments: ["--data", "@latin1", "--column", "v"], words: ["@latin1", "is not UTF-8"]),
            BadLine(
                executable: "worker", arguments: ["--data", "@directory", "--column", "v"],
                words: ["@directory", "is a directory"]),
            BadLine(
                executable: "ps-server", arguments: ["--bind", "999.1.1.1", "--port", "1"],
                words: ["999.1.1.1", "not an address"]),
            BadLine(
                executable: "ps-server", arguments: ["--port", "1", "--max-message-bytes=-5"],
                words: ["--max-message-bytes"]),
            // One heartbeat period: a worker is lost to any step that delays one heartbeat.
            BadLine(executable: "ps-server", arguments: ["--port", "1", "--worker-timeout", "1"], words: ["--worker-timeout", "heartbeat"]),
        ]

        @Test("a bad command line exits below 128, not 0, with a message naming the option or file", arguments: badLines)
        func badCommandLine(_ line: BadLine) throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            // Files the lines name: a CSV of 1e308 values, a CSV in Latin-1, and a directory.
            let files = [
                "@huge": dir.appendingPathComponent("huge.csv").path,
                "@latin1": dir.appendingPathComponent("latin1.csv").path,
                "@directory": dir.appendingPathComponent("a-directory").path,
            ]
            try ("t,v\n" + (0..<200).map { "\($0),1e308" }.joined(separator: "\n") + "\n").write(
                toFile: files["@huge"]!, atomically: true, encoding: .utf8)
            try Data(Array("t,v\n".utf8) + (0..<200).flatMap { Array("\($0),caf".utf8) + [0xE9, 0x0A] }).write(
                to: URL(fileURLWithPath: files["@latin1"]!))
            try FileManager.default.createDirectory(atPath: files["@directory"]!, withIntermediateDirectories: true)
            let arguments = line.arguments.map { files[$0] ?? $0 }
            let words = line.words.map { files[$0] ?? $0 }
            // A line that were wrongly accepted must still end: a worker evaluates once, a server is stopped by the bound.
            let extra =
                line.executable == "worker"
                ? ["--steps", "0", "--batch", "4", "--window", "6", "--horizon", "3", "--hidden", "8", "--hidden2", "5"]
                : []
            let (status, output) = try ProcessHarness.runToCompletion(
                ProcessHarness.binDirectory.appendingPathComponent(line.executable).path, arguments + extra, seconds: 30)
            #expect(status != 0 && status < 128, "exit status \(status): \(output.suffix(1500))")
            for w in words { #expect(output.contains(w), "the message should name \(w): \(output.suffix(1500))") }
            #expect(!output.contains("Fatal error"), "\(output.suffix(1500))")
        }

        @Test("the fuzzer's committed seed corpus is what FuzzServer --write-seeds writes, and replays without a crash")
        func fuzzCorpus() throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
                .standardized
            let corpus = root.appendingPathComponent("Tests/Fuzz/corpus").path
            let binary = ProcessHarness.binDirectory.appendingPathComponent("FuzzServer").path
            let fresh = FileManager.default.temporaryDirectory.appendingPathComponent("seeds-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: fresh) }
            let (wrote, out) = try ProcessHarness.runToCompletion(binary, ["--write-seeds", fresh], seconds: 30)
            #expect(wrote == 0, "\(out)")
            let names = try FileManager.default.contentsOfDirectory(atPath: fresh).sorted()
            #expect(try FileManager.default.contentsOfDirectory(atPath: corpus).sorted() == names)
            for n in names {
                #expect(
                    FileManager.default.contents(atPath: "\(fresh)/\(n)")
                        == FileManager.default.contents(atPath: "\(corpus)/\(n)"),
                    "seed \(n) differs from the committed one: run FuzzServer --write-seeds Tests/Fuzz/corpus")
            }
            let (status, output) = try ProcessHarness.runToCompletion(binary, [corpus], seconds: 60)
            #expect(status == 0 && output.contains("no crash"), "\(output.suffix(2000))")
            print("fuzz corpus: \(names.count) seeds up to date; \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}

/// A protocol client that speaks for one worker index from its own DEALER: what a hostile peer that
/// knows the protocol can do.
final class RawWorker {
    let context: Context
    let socket: Socket
    let index: UInt32
    let numWorkers: Int
    let incarnation = UInt64.random(in: 1...UInt64.max)
    var nextID: UInt64 = 0

    init(endpoint: String, index: UInt32, of numWorkers: Int, receiveHighWaterMark: Int32? = nil) throws {
        context = try Context()
        socket = try Socket(context, .dealer)
        if let hwm = receiveHighWaterMark { try socket.setReceiveHighWaterMark(hwm) }
        try socket.setLinger(milliseconds: 0)
        try socket.setReceiveTimeout(milliseconds: 10_000)
        try socket.connect(endpoint)
        self.index = index
        self.numWorkers = numWorkers
    }

    func send(_ kind: MessageKind, step: UInt64 = 0, _ body: [UInt8], tensors: [[Float]] = [], dontWait: Bool = false)
        throws
    {
        nextID += 1
        let h = Header(kind: kind, workerID: index, requestID: nextID, step: step, incarnation: incarnation)
        try socket.send(
            Envelope.frames(h, body: body, tensors: tensors.map { Frame(floats: $0) }).map(\.message),
            dontWait: dontWait)
    }

    /// Sends one request and waits (10 s at most) for the reply to it.
    func call(_ kind: MessageKind, step: UInt64 = 0, _ body: [UInt8], tensors: [[Float]] = []) throws -> Envelope {
        try send(kind, step: step, body, tensors: tensors)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let reply = try Envelope(frames: try socket.receive().map { Frame($0) }[...])
            if reply.header.requestID == nextID { return reply }
        }
        throw ErrorBody(code: .malformed, message: "no reply to \(kind) \(nextID) within 10 s")
    }

    @discardableResult
    func hello() throws -> Envelope {
        try call(.hello, Body.encode(Hello(workerName: "raw client \(index)", numWorkers: numWorkers)))
    }

    /// Pulls `names`; throws the server's error if it refuses.
    func pull(_ names: [String]) throws -> [String: [Float]] {
        let reply = try call(.pull, step: 1, Body.encode(Names(names: names)))
        guard reply.header.kind == .values else { throw try reply.decode(ErrorBody.self) }
        let got = try reply.decode(Names.self).names
        var out: [String: [Float]] = [:]
        for (n, f) in zip(got, reply.tensors) { out[n] = f.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
        return out
    }

    /// Pulls until the real workers have registered `names` (at most `seconds`).
    func waitForVariables(_ names: [String], seconds: Double) throws -> [String: [Float]] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do { return try pull(names) } catch let e as ErrorBody where e.code == .unknownVariable && Date() < deadline
            {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    func close() { socket.close() }
}

/// Random and mutated protocol messages from several raw DEALER connections at once, each with at most 8
/// replies outstanding (a peer that never reads is ignored by design; `slowReader` covers that).
final class Flood {
    struct Figures {
        var sent = 0
        var frames = 0
        var replies = 0
        var errors = 0
        var seconds = 0.0
    }

    let context: Context
    let sockets: [Socket]
    var rng: SplitMix64
    let names = Integration.ClusterTests.sevenNames

    init(endpoint: String, connections: Int, seed: UInt64) throws {
        let context = try Context()
        self.context = context
        sockets = try (0..<connections).map { _ in
            let s = try Socket(context, .dealer)
            try s.setLinger(milliseconds: 0)
            try s.connect(endpoint)
            return s
        }
        rng = SplitMix64(seed: seed)
    }

    func close() { for s in sockets { s.close() } }

    func random(_ n: Int) -> UInt64 { rng.next() % UInt64(n) }
    func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
    func header(_ kind: MessageKind, tensors: Int = 0) -> Header {
        Header(
            kind: kind, workerID: UInt32(random(3)), requestID: rng.next(), step: random(50), incarnation: rng.next(),
            tensorCount: UInt32(tensors))
    }
    func spec(_ name: String, _ shape: [Int], fan: [Int]? = nil) -> VariableSpec {
        VariableSpec(
            name: name, shape: shape, dtype: "float32", initializer: InitializerSpec(kind: "glorot_uniform"), seed: 1,
            fanShape: fan)
    }
    func push(_ name: String, _ values: [Float]) -> [[UInt8]] {
        Envelope.frames(header(.push, tensors: 1), Names(names: [name]), tensors: [Frame(floats: values)]).map(\.bytes)
    }

    /// The i-th hostile message.
    func message(_ i: Int) -> [[UInt8]] {
        let name = names[Int(random(names.count))]
        switch i % 14 {
        case 0: return (0...random(4)).map { _ in bytes(Int(random(200))) }  // random frames
        case 1: return [Array(header(.pull).encoded.prefix(Int(random(40)))), bytes(10)]  // truncated header
        case 2:  // an element count that overflows
            return Envelope.frames(header(.register), Register(variables: [spec("evil/a", [1 << 62, 4])])).map(\.bytes)
        case 3:  // fans that overflow
            return Envelope.frames(
                header(.register), Register(variables: [spec("evil/b", [2, 2], fan: [Int.max, Int.max])])
            )
            .map(\.bytes)
        case 4:  // a job of absurd size
            let n = [Int.max, 1 << 40, -1, 0, 65_537][Int(random(5))]
            return Envelope.frames(header(.hello), Hello(workerName: "greedy", numWorkers: n)).map(\.bytes)
        case 5:  // one variable named many times
            return Envelope.frames(header(.pull), Names(names: [String](repeating: name, count: 1 + Int(random(3000)))))
                .map(\.bytes)
        case 6: return push(name, [Float](repeating: 1, count: Int(random(100))))  // wrong size
        case 7: return push(name, [Float](repeating: .nan, count: 288))
        case 8: return push(name, [Float](repeating: 3e38, count: 288))
        case 9:  // a kind that does not exist
            var raw = header(.pull).encoded
            raw[3] = [0, 14, 99, 200, 255][Int(random(5))]
            return [raw, Body.encode(Names(names: []))]
        case 10:  // a valid message with bytes flipped in its header or body
            var frames = Envelope.frames(header(.register), Register(variables: [spec("evil/c", [3, 3])])).map(\.bytes)
            for _ in 0...random(4) {
                let f = Int(random(2))
                frames[f][Int(random(frames[f].count))] ^= UInt8(1 + random(255))
            }
            return frames
        case 11:  // claims a real worker's index in a job of another size, or an index past the job: refused before
            // any question of who holds the index (a live worker's index claimed by a second process is the fault
            // tests' twin; a flood that could take an index over would test the clock, not the rules)
            var h = header(.hello)
            let past = random(2) == 0
            h.workerID = past ? 2 : UInt32(random(2))
            return Envelope.frames(h, Hello(workerName: "impostor", numWorkers: past ? 2 : 3)).map(\.bytes)
        case 12:  // more tensor frames announced than carried, or the reverse
            var frames = Envelope.frames(header(.push, tensors: 1), Names(names: [name]), tensors: [Frame(floats: [1])])
                .map(\.bytes)
            frames[0][32] = UInt8(random(200))
            return frames
        default:  // replies sent to a server, and a wrong version
            var raw = header([.values, .welcome, .goodbye, .error][Int(random(4))]).encoded
            if random(2) == 0 { raw[2] = UInt8(random(256)) }
            return [raw, bytes(Int(random(64)))]
        }
    }

    /// Sends `messages` messages round-robin over the connections, reading replies as they come; calls
    /// `onWarm` once `warmUp` messages have been answered. Bounded by `seconds` in all.
    func run(messages: Int, seconds: Double, warmUp: Int, onWarm: () -> Void) throws -> Figures {
        var f = Figures()
        var outstanding = [Int](repeating: 0, count: sockets.count)
        let started = Date()
        let deadline = started.addingTimeInterval(seconds)
        var warmed = false
        func drain(milliseconds: Int) throws {
            let ready = try Socket.poll(sockets, milliseconds: milliseconds)
            for (k, r) in ready.enumerated() where r {
                while let reply = try? sockets[k].receive(dontWait: true) {
                    f.replies += 1
                    outstanding[k] -= 1
                    if let e = try? Envelope(frames: reply.map(Frame.init)[...]), e.header.kind == .error {
                        f.errors += 1
                    }
                }
            }
            if !warmed && f.replies >= warmUp {
                warmed = true
                onWarm()
            }
        }
        for i in 0..<messages {
            let k = i % sockets.count
            while outstanding[k] >= 8 {
                guard Date() < deadline else {
                    Issue.record("the server stopped answering after \(f.replies) replies to \(f.sent) messages")
                    return f
                }
                try drain(milliseconds: 100)
            }
            let m = message(i)
            try sockets[k].send(m)
            outstanding[k] += 1
            f.sent += 1
            f.frames += m.count
            if i % 16 == 0 { try drain(milliseconds: 0) }
        }
        while f.replies < f.sent && Date() < deadline { try drain(milliseconds: 100) }
        f.seconds = Date().timeIntervalSince(started)
        return f
    }
}
