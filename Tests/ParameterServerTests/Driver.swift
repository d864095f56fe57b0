import Logging
import Optimizers
import Transport
import Wire

@testable import ParameterServer

/// Drives a `ServerCore` directly: requests in, effects out, with a hand-moved clock. No sockets.
final class Driver {
    var core: ServerCore
    var now = 100.0
    var nextID: [UInt32: UInt64] = [:]

    init(_ config: ServerConfig, restored: ServerState? = nil) {
        core = ServerCore(config: config, incarnation: 77, restored: restored, now: 100, logger: Logger(label: "test"))
    }

    static func config(_ mode: SyncMode, _ change: (inout ServerConfig) -> Void = { _ in }) -> ServerConfig {
        var c = ServerConfig(name: "t", mode: mode, optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.5))
        c.checkpointSeconds = nil
        change(&c)
        return c
    }

    static func peer(_ w: UInt32, key: String? = nil) -> Peer { Peer(id: Array("peer-\(w)".utf8), key: key) }

    /// Sends one request and returns every effect.
    func request(
        _ kind: MessageKind, worker: UInt32, incarnation: UInt64? = nil, id: UInt64? = nil, step: UInt64 = 0,
        body: [UInt8], tensors: [[Float]] = [], peer: Peer? = nil
    ) -> [Effect] {
        let rid = id ?? { nextID[worker, default: 0] += 1; return nextID[worker]! }()
        let h = Header(kind: kind, workerID: worker, requestID: rid, step: step, incarnation: incarnation ?? 1000 + UInt64(worker))
        let frames = Envelope.frames(h, body: body, tensors: tensors.map { Frame(floats: $0) })
        return core.receive(frames, from: peer ?? Driver.peer(worker), now: now)
    }

    func hello(_ w: UInt32, of n: Int, incarnation: UInt64? = nil, peer: Peer? = nil) -> [Effect] {
        request(.hello, worker: w, incarnation: incarnation, body: Body.encode(Hello(workerName: "worker \(w)", numWorkers: n)), peer: peer)
    }

    /// - Parameter values: the values of the specs of kind `tensor`, in order (tensor frames).
    func register(_ w: UInt32, _ specs: [VariableSpec], values: [[Float]] = []) -> [Effect] {
        request(.register, worker: w, body: Body.encode(Register(variables: specs)), tensors: values)
    }

    func push(_ w: UInt32, step: UInt64, _ grads: [String: [Float]], id: UInt64? = nil, incarnation: UInt64? = nil, peer: Peer? = nil) -> [Effect] {
        let names = grads.keys.sorted()
        return request(
            .push, worker: w, incarnation: incarnation, id: id, step: step, body: Body.encode(Names(names: names)),
            tensors: names.map { grads[$0]! }, peer: peer)
    }

    func pull(_ w: UInt32, step: UInt64, _ names: [String]) -> [Effect] {
        request(.pull, worker: w, step: step, body: Body.encode(Names(names: names)))
    }

    func done(_ w: UInt32) -> [Effect] { request(.done, worker: w, body: Body.encode(Names(names: []))) }

    /// Joins workers 0..<n and registers `specs` through worker 0.
    func form(_ n: Int, _ specs: [VariableSpec]) {
        for w in 0..<UInt32(n) { _ = hello(w, of: n) }
        _ = register(0, specs)
    }
}

/// Reading effects.
extension Array where Element == Effect {
    var replies: [(Peer, Envelope)] {
        compactMap {
            if case .send(let frames, let peer) = $0 { return (peer, try! Envelope(frames: frames[...])) }
            return nil
        }
    }
    var kinds: [MessageKind] { replies.map(\.1.header.kind) }
    var errors: [ErrorBody] { replies.compactMap { $0.1.header.kind == .error ? try? $0.1.decode(ErrorBody.self) : nil } }
    var exits: Int { filter { if case .exit = $0 { return true } else { return false } }.count }
    var checkpoints: Int { filter { if case .checkpoint = $0 { return true } else { return false } }.count }
    func values(_ i: Int = 0) -> [[Float]] {
        replies.filter { $0.1.header.kind == .values }[i].1.tensors.map { f in
            f.withUnsafeBytes { raw -> [Float] in [Float](raw.bindMemory(to: Float.self)) }
        }
    }
}

func spec(_ name: String, _ shape: [Int], _ kind: String = "zeros", a: Float = 0) -> VariableSpec {
    VariableSpec(
        name: name, shape: shape, dtype: "float32", initializer: InitializerSpec(kind: kind, a: a, b: 0),
        seed: 1, fanShape: nil)
}
