import Foundation
import Logging
import Optimizers
import ParameterServer
import Transport
import VariableScopes
import Wire
import WorkerRuntime

/// The fuzz input as a server's replies: messages one after another, each a flag byte (bit 0: give it the
/// id of the worker's latest request, so that it answers something), a frame count byte, then per frame a
/// 32-bit little-endian length and its bytes. Whatever is left over is ignored.
enum ReplyScript {
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [(answer: Bool, frames: [[UInt8]])] {
        var out: [(Bool, [[UInt8]])] = []
        var i = 0
        while i + 2 <= bytes.count, out.count < 64 {
            let flag = bytes[i]
            let n = Int(bytes[i + 1])
            i += 2
            var frames: [[UInt8]] = []
            for _ in 0..<n {
                guard i + 4 <= bytes.count else { break }
                let len = Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24
                i += 4
                let take = min(len, bytes.count - i, 1 << 20)
                frames.append(Array(bytes[i..<i + take]))
                i += take
            }
            out.append((flag & 1 == 1, frames))
        }
        return out
    }

    static func encode(_ messages: [(answer: Bool, frames: [[UInt8]])]) -> Data {
        var d = Data()
        for (answer, frames) in messages {
            d.append(answer ? 1 : 0)
            d.append(UInt8(frames.count))
            for f in frames {
                let n = UInt32(f.count)
                d.append(contentsOf: [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)])
                d.append(contentsOf: f)
            }
        }
        return d
    }
}

/// A server that is only its script: each receive hands out the next scripted message (its request id set to
/// the latest request's when flagged); when the script runs out, nothing comes.
final class ScriptedServer: ClientTransport {
    var script: [(answer: Bool, frames: [[UInt8]])]
    var latest: UInt64 = 0
    var refusal: String? { nil }
    init(_ script: [(answer: Bool, frames: [[UInt8]])]) { self.script = script }

    func send(_ frames: [Frame]) throws {
        if let h = frames.first.flatMap({ f in f.withUnsafeBytes { try? Header(decoding: $0) } }) { latest = h.requestID }
    }

    func receive(timeout: Double) throws -> [Frame]? {
        guard !script.isEmpty else { return nil }
        var (answer, frames) = script.removeFirst()
        if answer, var first = frames.first, first.count >= Header.size {
            // Bytes 8..<16 of the header hold the request id (little-endian).
            for k in 0..<8 { first[8 + k] = UInt8(truncatingIfNeeded: latest >> (8 * UInt64(k))) }
            frames[0] = first
        }
        return frames.map { Frame($0) }
    }

    func reconnect() throws {}
    func close() {}
}

/// The worker's model for fuzzing: two small variables, as every run builds them.
func fuzzGraph() -> Graph {
    let g = Graph(seed: 3)
    _ = try? g.getVariable("dense/kernel", shape: [3, 2])
    _ = try? g.getVariable("dense/bias", shape: [2], initializer: .constant(0.5))
    return g
}

/// Short waits: a script that stops answering ends the run at once instead of after a minute.
func fuzzSettings() -> RemoteSettings {
    var s = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3)
    s.timeout = 0.02
    s.lostAfter = 0.01
    s.heartbeat = 0.005
    s.recoveryTimeout = 0.02
    return s
}

/// One input: a worker joins, trains three steps and says done against the scripted server. Any error is
/// fine (it is what a hostile server earns); a trap, a hang or a non-finite variable is a bug.
@discardableResult
func runWorker(on script: [(answer: Bool, frames: [[UInt8]])]) -> Bool {
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    let g = fuzzGraph()
    let vars = g.trainableVariables
    guard let remote = try? RemoteExchange(servers: ["fuzz:1"], transports: [ScriptedServer(script)], settings: fuzzSettings(), logger: logger)
    else { return false }
    do {
        _ = try remote.start(variables: vars)
        for step in 1...3 {
            for v in vars { for k in 0..<v.count { v.gradient[k] = 0.5 } }
            try remote.exchange(step: step, variables: vars)
        }
        try remote.finish(variables: vars)
    } catch {
        _ = error
    }
    // Whatever a server sent, the worker's variables never hold values it would train on if they are not finite.
    for v in vars where !Array(v.value).allSatisfy(\.isFinite) {
        fatalError("variable \(v.name) took non-finite values from a server")
    }
    return true
}

#if FUZZING
    /// libFuzzer's entry by name, in the fuzz build only (see FuzzServer's).
    @_cdecl("LLVMFuzzerTestOneInput")
    func libFuzzerEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { fuzzTestOneInput(data, size) }
#endif

public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    runWorker(on: ReplyScript.parse(UnsafeRawBufferPointer(start: data, count: size)))
    return 0
}

/// The seed corpus: the replies the real server rules give a worker (recorded through the in-process hub),
/// and variants of them.
enum Seeds {
    /// Records what a real server sends a worker that joins, trains three steps and says done.
    static func recorded(packed: Bool, mode: SyncMode) -> [(answer: Bool, frames: [[UInt8]])] {
        let hub = InProcessHub()
        var config = ServerConfig(name: "ps", mode: mode, optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.1))
        config.keepServing = true
        let core = ServerCore(config: config, incarnation: 5, now: 0, logger: Logger(label: "seed"))
        let server = hub.server()
        let client = Recorder(hub.client())
        var settings = fuzzSettings()
        settings.timeout = 5
        settings.lostAfter = 5
        settings.packed = packed
        let box = ServingBox(core: core, server: server)
        let serving = Thread {
            let (core, server) = (box.core, box.server)
            var idle = 0
            while idle < 40 {
                guard let (peer, frames) = try? server.receive(timeout: 0.05) else {
                    idle += 1
                    continue
                }
                idle = 0
                for e in core.receive(frames, from: peer, now: 1) {
                    if case .send(let f, let p) = e { _ = server.send(f, to: p) }
                }
            }
        }
        serving.start()
        let g = fuzzGraph()
        if let remote = try? RemoteExchange(servers: ["seed:1"], transports: [client], settings: settings, logger: Logger(label: "seed")) {
            _ = try? remote.start(variables: g.trainableVariables)
            for step in 1...3 { try? remote.exchange(step: step, variables: g.trainableVariables) }
            try? remote.finish(variables: g.trainableVariables)
        }
        return client.received.map { (true, $0) }
    }

    static func write(to dir: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var seeds: [String: Data] = [:]
        let async = recorded(packed: true, mode: .async)
        seeds["async-packed"] = ReplyScript.encode(async)
        seeds["async-frame-each"] = ReplyScript.encode(recorded(packed: false, mode: .async))
        seeds["sync-packed"] = ReplyScript.encode(recorded(packed: true, mode: .sync))
        // A server that restarts (a new incarnation) after the welcome, and one that sends NaN values.
        var restarted = async
        if restarted.count > 2, restarted[2].frames.first?.count ?? 0 >= Header.size {
            restarted[2].frames[0][24] ^= 0xff
        }
        seeds["new-incarnation"] = ReplyScript.encode(restarted)
        var nan = async
        if let k = nan.firstIndex(where: { $0.frames.count == 3 && $0.frames.first?.count == Header.size && $0.frames.first?[1] != 0 }) {
            nan[k].frames[2] = Array(repeating: 0xff, count: nan[k].frames[2].count)
        }
        seeds["nan-values"] = ReplyScript.encode(nan)
        for (name, data) in seeds { try data.write(to: URL(fileURLWithPath: "\(dir)/\(name)")) }
        return seeds.count
    }
}

/// A connection that keeps a copy of every message it receives.
final class Recorder: ClientTransport {
    let inner: ClientTransport
    var received: [[[UInt8]]] = []
    init(_ inner: ClientTransport) { self.inner = inner }
    var refusal: String? { inner.refusal }
    func send(_ frames: [Frame]) throws { try inner.send(frames) }
    func receive(timeout: Double) throws -> [Frame]? {
        let f = try inner.receive(timeout: timeout)
        if let f { received.append(f.map(\.bytes)) }
        return f
    }
    func reconnect() throws { try inner.reconnect() }
    func close() { inner.close() }
}

/// The in-process server's parts, handed to its thread (used only there once handed over).
final class ServingBox: @unchecked Sendable {
    let core: ServerCore
    let server: ServerTransport
    init(core: ServerCore, server: ServerTransport) {
        self.core = core
        self.server = server
    }
}
