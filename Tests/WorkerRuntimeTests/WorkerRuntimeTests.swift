import Foundation
import Logging
import Optimizers
import ParameterServer
import ProcessSupport
import Testing
import Transport
import VariableScopes
import Wire

@testable import WorkerRuntime

/// A server's rules and loop on a thread, reached through the in-process hub.
final class InProcessServer: @unchecked Sendable {
    let hub = InProcessHub()
    let stop = StopFlag()
    let loop: ServerLoop
    private let finished = DispatchSemaphore(value: 0)

    init(_ config: ServerConfig) {
        loop = ServerLoop(
            core: ServerCore(config: config, incarnation: 5, now: 0, logger: Logger(label: "ps")),
            transport: hub.server(), store: nil, logger: Logger(label: "ps"))
        let thread = Thread { [self] in
            try? self.loop.run(stop: self.stop)
            self.finished.signal()
        }
        thread.start()
    }

    func shutdown() {
        stop.request()
        _ = finished.wait(timeout: .now() + 5)
    }
}

@Suite("Worker runtime")
struct WorkerRuntimeTests {
    @Test("placement: largest first onto the least-loaded server; the same on every call")
    func placement() {
        let vars = [("a", 100), ("b", 60), ("c", 50), ("d", 10), ("e", 10)]
        let p = Placement(vars, servers: 2)
        #expect(p.owner == ["a": 0, "b": 1, "c": 1, "d": 0, "e": 0])  // e: a 110-110 tie goes to server 0
        #expect(p.load.reduce(0, +) == 230)
        #expect(Placement(vars.reversed(), servers: 2) == p)
        #expect(Set(Placement(vars, servers: 5).owner.values) == [0, 1, 2, 3, 4])
    }

    @Test("a partitioned variable's parts are placed like any variables, spreading over the servers")
    func partitionsSpread() throws {
        let g = Graph()
        try g.variableScope("emb", partitioner: .fixedSize(4)) { _ in try g.getVariable("table", shape: [400, 16]) }
        let p = Placement(variables: g.trainableVariables, servers: 4)
        #expect(p.owner.count == 4)
        #expect(Set(p.owner.values) == [0, 1, 2, 3])
        #expect(p.load.allSatisfy { $0 == 100 * 16 * 4 })
    }

    @Test("host:port lists: empty entries, missing ports and ports out of range are refused")
    func endpoints() {
        #expect(throws: RemoteError.self) { try RemoteExchange.checkEndpoints([]) }
        #expect(throws: RemoteError.self) { try RemoteExchange.checkEndpoints([""]) }
        #expect(throws: RemoteError.self) { try RemoteExchange.checkEndpoints(["a:0"]) }
        #expect(throws: RemoteError.self) { try RemoteExchange.checkEndpoints(["a"]) }
        #expect(throws: Never.self) { try RemoteExchange.checkEndpoints(["a:1", "b:65535"]) }
    }

    func graph(seed: UInt64 = 3) throws -> Graph {
        let g = Graph(seed: seed)
        _ = try g.getVariable("dense/kernel", shape: [3, 2])
        _ = try g.getVariable("dense/bias", shape: [2], initializer: .constant(0.5))
        return g
    }

    @Test(
        "a worker's exchange trains against the real server rules: pull, push, done; tensors packed in one frame or one frame each",
        arguments: [true, false])
    func exchange(packed: Bool) throws {
        let server = InProcessServer(ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { server.shutdown() }
        let g = try graph()
        let initial = g.trainableVariables.map { Array($0.value) }
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3)
        settings.packed = packed
        let remote = try RemoteExchange(
            servers: ["in-process:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "w"))
        #expect(try remote.start(variables: g.trainableVariables) == 0)
        #expect(remote.connections.map(\.packed) == [packed])
        for v in g.trainableVariables {
            #expect(Array(v.value) == initial[g.trainableVariables.firstIndex { $0 === v }!])  // the server's values match
            for k in 0..<v.count { v.gradient[k] = 1 }
        }
        try remote.exchange(step: 1, variables: g.trainableVariables)
        for (v, before) in zip(g.trainableVariables, initial) { #expect(Array(v.value) == before.map { $0 - 1 }) }
        try remote.finish(variables: g.trainableVariables)
        #expect(remote.stats.steps == 1)
    }

    @Test("past a server's frame limit a packing worker sends a frame per tensor, and still trains")
    func packedPastTheLimit() throws {
        var config = ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1))
        config.limits.maxFrameBytes = 16  // dense/kernel alone is 24 bytes
        let server = InProcessServer(config)
        defer { server.shutdown() }
        let g = try graph()
        let initial = g.trainableVariables.map { Array($0.value) }
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3)
        settings.maxFrameBytes = 24  // dense/kernel fits alone; both together (32 bytes) do not
        let remote = try RemoteExchange(
            servers: ["in-process:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "w"))
        _ = try remote.start(variables: g.trainableVariables)
        #expect(remote.connections.map(\.packed) == [true])
        for v in g.trainableVariables { for k in 0..<v.count { v.gradient[k] = 2 } }
        try remote.exchange(step: 1, variables: g.trainableVariables)
        for (v, before) in zip(g.trainableVariables, initial) { #expect(Array(v.value) == before.map { $0 - 2 }) }
        try remote.finish(variables: g.trainableVariables)
    }

    @Test("restore with servers: registration carries the worker's values; a server holding a variable keeps its own")
    func restoreRegisters() throws {
        let server = InProcessServer(ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { server.shutdown() }
        // The first worker created the variables from the seed.
        let first = try graph()
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 2, seed: 3)
        let a = try RemoteExchange(servers: ["p:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "a"))
        _ = try a.start(variables: first.trainableVariables)
        let served = first.trainableVariables.map { Array($0.value) }
        // A second worker restored other values: the server keeps its own and sends them back.
        let second = try graph()
        for v in second.trainableVariables { for k in 0..<v.count { v.value[k] = 42 } }
        settings.taskIndex = 1
        settings.registerValues = true
        let b = try RemoteExchange(servers: ["p:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "b"))
        _ = try b.start(variables: second.trainableVariables)
        #expect(second.trainableVariables.map { Array($0.value) } == served)
        // A fresh server takes a restoring worker's values.
        let fresh = InProcessServer(ServerConfig(name: "ps2", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { fresh.shutdown() }
        let restored = try graph()
        for v in restored.trainableVariables { for k in 0..<v.count { v.value[k] = 7 } }
        settings.taskIndex = 0
        settings.numWorkers = 1
        let c = try RemoteExchange(servers: ["p:2"], transports: [fresh.hub.client()], settings: settings, logger: Logger(label: "c"))
        _ = try c.start(variables: restored.trainableVariables)
        #expect(restored.trainableVariables.allSatisfy { Array($0.value).allSatisfy { $0 == 7 } })
        #expect(fresh.loop.core.value(of: "dense/kernel") == [7, 7, 7, 7, 7, 7])
    }

    @Test("a variable's spec recreates it on the server bit for bit, explicit values included")
    func specs() throws {
        let g = Graph(seed: 5)
        let v = try g.getVariable("w", shape: [3, 2], initializer: .truncatedNormal(mean: 0, stddev: 0.5))
        let t = try g.variable(initialValue: .init(shape: [2], scalars: [1.5, -2]), name: "t")
        let server = InProcessServer(ServerConfig(name: "ps"))
        defer { server.shutdown() }
        let remote = try RemoteExchange(
            servers: ["p:1"], transports: [server.hub.client()], settings: RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 5),
            logger: Logger(label: "w"))
        let before = [Array(v.value), Array(t.value)]
        _ = try remote.start(variables: [v, t])
        #expect(server.loop.core.value(of: "w") == before[0])
        #expect(server.loop.core.value(of: "t") == [1.5, -2])
    }

    @Test("restoring from a directory of server checkpoints reads each server's newest file")
    func newestFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("restore-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = ServerConfig(name: "ps-0", optimizer: OptimizerConfig(kind: .adam))
        let store = try CheckpointStore(directory: dir, name: "ps-0")
        func state(_ x: Float) -> ServerState {
            ServerState(
                variables: [
                    SavedVariable(name: "dense/kernel", shape: [3, 2], dtype: "float32", value: Array(repeating: x, count: 6), first: Array(repeating: 0, count: 6), second: Array(repeating: 0, count: 6), step: 1, registeredBy: "w"),
                    SavedVariable(name: "dense/bias", shape: [2], dtype: "float32", value: [x, x], first: [0, 0], second: [0, 0], step: 1, registeredBy: "w"),
                ], updates: 1, syncStep: 0, numWorkers: 1, workers: [])
        }
        try store.write(state(1), config: config)
        try store.write(state(2), config: config)
        let g = try graph()
        try Checkpoints.restore(g, from: dir)
        #expect(g.trainableVariables.allSatisfy { Array($0.value).allSatisfy { $0 == 2 } })
    }
}

@Suite("Prefetch")
struct PrefetchTests {
    @Test("with prefetch a step's update arrives one exchange later, and every gradient is applied once")
    func prefetch() throws {
        let server = InProcessServer(ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { server.shutdown() }
        let g = Graph(seed: 1)
        let v = try g.getVariable("v", shape: [2], initializer: .zeros)
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 1)
        settings.prefetch = true
        let remote = try RemoteExchange(servers: ["p:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "w"))
        _ = try remote.start(variables: [v])
        v.gradient[0] = 1
        v.gradient[1] = 2
        try remote.exchange(step: 1, variables: [v])
        #expect(Array(v.value) == [0, 0])  // step 2 runs on the values it had
        v.gradient[0] = 10  // the next backward pass overwrites the buffer: the push sent a copy
        v.gradient[1] = 10
        try remote.exchange(step: 2, variables: [v])
        #expect(Array(v.value) == [-1, -2])  // step 1's update, taken in at this exchange
        try remote.finish(variables: [v])
        #expect(server.loop.core.value(of: "v") == [-11, -12])
        #expect(remote.stats.prefetchedSteps == 2)
    }
}

@Suite("Liveness and recovery, in process")
struct LivenessInProcessTests {
    func graph() throws -> Graph {
        let g = Graph(seed: 3)
        _ = try g.getVariable("dense/kernel", shape: [3, 2])
        _ = try g.getVariable("dense/bias", shape: [2], initializer: .constant(0.5))
        return g
    }

    @Test("a connection the server no longer knows (libzmq reconnected it) is bound again by a hello, and the step goes on")
    func rebind() throws {
        let server = InProcessServer(ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { server.shutdown() }
        let g = try graph()
        let client = server.hub.client()
        let remote = try RemoteExchange(
            servers: ["p:1"], transports: [client], settings: RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3), logger: Logger(label: "w"))
        _ = try remote.start(variables: g.trainableVariables)
        // A new connection id under the worker, as after a pause past libzmq's heartbeat: the server refuses it
        // as wrongIdentity until the same process says hello on it.
        try client.reconnect()
        for v in g.trainableVariables { for k in 0..<v.count { v.gradient[k] = 1 } }
        try remote.exchange(step: 1, variables: g.trainableVariables)
        #expect(remote.stats.rebinds == 1 && remote.stats.recoveries == 1)
        #expect(server.loop.core.value(of: "dense/bias") == [-0.5, -0.5])  // applied once
        try remote.finish(variables: g.trainableVariables)
    }

    @Test("a refused push is skipped and counted; --max-refused-pushes in a row end the worker with a message")
    func refusedPushes() throws {
        let server = InProcessServer(ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1)))
        defer { server.shutdown() }
        let g = try graph()
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3)
        settings.maxRefusedPushes = 3
        let remote = try RemoteExchange(servers: ["p:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "w"))
        _ = try remote.start(variables: g.trainableVariables)
        let vars = g.trainableVariables
        func set(_ x: Float) { for v in vars { for k in 0..<v.count { v.gradient[k] = x } } }
        set(.nan)
        try remote.exchange(step: 1, variables: vars)
        try remote.exchange(step: 2, variables: vars)
        #expect(remote.stats.refusedPushes == 2)
        set(1)
        try remote.exchange(step: 3, variables: vars)  // a good push resets the count
        #expect(server.loop.core.value(of: "dense/bias") == [-0.5, -0.5])
        set(.infinity)
        try remote.exchange(step: 4, variables: vars)
        try remote.exchange(step: 5, variables: vars)
        #expect(throws: RemoteError.self) { try remote.exchange(step: 6, variables: vars) }
        #expect(remote.stats.refusedPushes == 5)
    }

    @Test("tensors past both sides' frame limits travel in chunks: register with values, push and pull")
    func chunked() throws {
        var config = ServerConfig(name: "ps", optimizer: OptimizerConfig(kind: .sgd, learningRate: 1))
        config.limits.maxFrameBytes = 8
        let server = InProcessServer(config)
        defer { server.shutdown() }
        let g = try graph()
        for v in g.trainableVariables { v.assign((0..<v.count).map { Float($0) + 1 }) }
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 3)
        settings.maxFrameBytes = 12
        settings.packed = false
        settings.registerValues = true
        let remote = try RemoteExchange(servers: ["p:1"], transports: [server.hub.client()], settings: settings, logger: Logger(label: "w"))
        let vars = g.trainableVariables
        _ = try remote.start(variables: vars)
        // The server took the values the register carried (dense/kernel: 24 bytes in frames of 8).
        #expect(server.loop.core.value(of: "dense/kernel") == [1, 2, 3, 4, 5, 6])
        for v in vars { v.gradient.update(repeating: 1) }
        try remote.exchange(step: 1, variables: vars)
        #expect(server.loop.core.value(of: "dense/kernel") == [0, 1, 2, 3, 4, 5])
        // The pulled values came back in chunks of at most 12 bytes and were joined.
        #expect(Array(vars.first { $0.name == "dense/kernel" }!.value) == [0, 1, 2, 3, 4, 5])
        try remote.finish(variables: vars)
    }
}
