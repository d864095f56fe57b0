import Foundation
import Wire

/// The seed corpus: real protocol messages, built with `Wire`'s own encoders, as `FuzzScript` records.
/// Each seed opens with the hellos and the register that a job starts with, so mutations of its later
/// messages reach the server's deeper rules (pull, push, sync steps, done) rather than stopping at
/// "send hello first".
enum Seeds {
    /// `Body.encode` with sorted keys: the same JSON a worker sends, byte-stable across runs (a plain
    /// encoder's key order follows per-process hash seeds), so the committed corpus can be checked.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try! encoder.encode(value))
    }

    static let incarnations: [UInt64] = [1000, 1001, 1002, 1003]

    static func message(
        _ kind: MessageKind, peer: Int, worker: UInt32? = nil, id: UInt64, step: UInt64 = 0, body: [UInt8],
        tensors: [[Float]] = []
    ) -> [UInt8] {
        let h = Header(
            kind: kind, workerID: worker ?? UInt32(peer), requestID: id, step: step, incarnation: incarnations[peer])
        let frames = Envelope.frames(h, body: body, tensors: tensors.map { Frame(floats: $0) })
        return FuzzScript.encode(peer: peer, frames: frames.map(\.bytes))
    }

    static func hello(_ peer: Int, of n: Int) -> [UInt8] {
        message(.hello, peer: peer, id: 1, body: encode(Hello(workerName: "seed \(peer)", numWorkers: n)))
    }

    static func spec(_ name: String, _ shape: [Int], _ kind: String = "glorot_uniform", fan: [Int]? = nil)
        -> VariableSpec
    {
        VariableSpec(
            name: name, shape: shape, dtype: "float32", initializer: InitializerSpec(kind: kind, a: 0, b: 0.1), seed: 7,
            fanShape: fan)
    }

    static let model = [
        spec("enc/kernel", [6, 8]), spec("enc/bias", [8], "zeros"), spec("dec/kernel", [4, 4], "truncated_normal"),
    ]

    static func register(_ peer: Int, _ specs: [VariableSpec] = model, id: UInt64 = 2, tensors: [[Float]] = []) -> [UInt8] {
        message(.register, peer: peer, id: id, body: encode(Register(variables: specs)), tensors: tensors)
    }

    static func names(_ n: [String]) -> [UInt8] { encode(Names(names: n)) }

    static func pull(_ peer: Int, id: UInt64, step: UInt64, _ n: [String] = model.map(\.name)) -> [UInt8] {
        message(.pull, peer: peer, id: id, step: step, body: names(n))
    }

    static func push(_ peer: Int, id: UInt64, step: UInt64, fill: Float = 0.01) -> [UInt8] {
        message(
            .push, peer: peer, id: id, step: step, body: names(model.map(\.name)),
            tensors: model.map { [Float](repeating: fill, count: $0.count ?? 0) })
    }

    static func tick(_ tenths: UInt8) -> [UInt8] { [FuzzScript.tick, tenths] }

    /// Two workers joined, the model registered.
    static let start = hello(0, of: 2) + hello(1, of: 2) + register(0) + register(1, id: 2)

    /// Named seeds.
    static var all: [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        let session =
            start + pull(0, id: 3, step: 1) + pull(1, id: 3, step: 1) + push(0, id: 4, step: 1)
            + push(1, id: 4, step: 1)
            + pull(0, id: 5, step: 2) + message(.ping, peer: 1, id: 5, body: names([])) + tick(5)
            + push(0, id: 6, step: 2)
            + [FuzzScript.snapshot] + message(.done, peer: 0, id: 7, body: names([]))
            + message(.done, peer: 1, id: 6, body: names([])) + tick(10)
        seeds.append(("valid-session", session))
        seeds.append(
            (
                "valid-restart",
                start + push(0, id: 3, step: 1) + push(1, id: 3, step: 1) + [FuzzScript.restart] + hello(0, of: 2)
                    + pull(0, id: 4, step: 2) + push(0, id: 3, step: 1) + push(0, id: 5, step: 2) + tick(3)
            ))
        seeds.append(("valid-hello", hello(0, of: 1)))
        seeds.append(("valid-register", hello(0, of: 1) + register(0)))
        seeds.append(("valid-pull", hello(0, of: 1) + register(0) + pull(0, id: 3, step: 1)))
        seeds.append(("valid-push", hello(0, of: 1) + register(0) + push(0, id: 3, step: 1)))
        seeds.append(("valid-ping", hello(0, of: 1) + message(.ping, peer: 0, id: 2, body: names([]))))
        seeds.append(("valid-done", hello(0, of: 1) + register(0) + message(.done, peer: 0, id: 3, body: names([]))))
        seeds.append(("valid-resent-push", start + push(0, id: 4, step: 1) + push(0, id: 4, step: 1)))
        seeds.append(("valid-curve-peer", hello(3, of: 4) + register(3) + push(3, id: 3, step: 1)))
        seeds.append(("valid-lost-worker", start + tick(255) + tick(255) + push(1, id: 4, step: 1) + tick(1)))
        // A packing worker: one frame for all the gradients, values back in one. Two workers, as in the other
        // seeds, so that the replay's long-lived server (its worker count fixed at 2) takes this hello too.
        let packedHello = message(
            .hello, peer: 0, id: 1, body: encode(Hello(workerName: "seed packed", numWorkers: 2, packed: true)))
        let packedGradients = [[Float](repeating: 0.01, count: model.reduce(0) { $0 + ($1.count ?? 0) })]
        seeds.append(
            (
                "valid-packed",
                packedHello + register(0) + pull(0, id: 3, step: 1)
                    + message(.push, peer: 0, id: 4, step: 1, body: names(model.map(\.name)), tensors: packedGradients)
                    + pull(0, id: 5, step: 2)
            ))

        // Malformed and hostile, each after a proper start.
        seeds.append(("bad-register-overflow", start + register(0, [spec("huge", [1 << 62, 4])], id: 9)))
        seeds.append(("bad-register-fan", start + register(0, [spec("fan", [2, 2], fan: [Int.max, Int.max])], id: 9)))
        seeds.append(("bad-register-negative", start + register(0, [spec("neg", [-3, 4], "zeros")], id: 9)))
        seeds.append(
            ("bad-register-rank", start + register(0, [spec("deep", [Int](repeating: 1, count: 40), "zeros")], id: 9)))
        seeds.append(
            (
                "bad-register-tensor-init",
                start
                    + register(
                        0,
                        [
                            VariableSpec(
                                name: "t", shape: [3], dtype: "float32",
                                initializer: InitializerSpec(kind: "tensor"), seed: 0)
                        ], id: 9, tensors: [[1, .nan, 3]])
            ))
        seeds.append(
            (
                "bad-register-dtype",
                start
                    + register(
                        0,
                        [
                            VariableSpec(
                                name: "d", shape: [2], dtype: "complex128", initializer: InitializerSpec(kind: "zeros"),
                                seed: 0)
                        ], id: 9)
            ))
        seeds.append(("bad-register-conflict", start + register(1, [spec("enc/kernel", [8, 6])], id: 9)))
        seeds.append(
            (
                "bad-hello-workers",
                message(.hello, peer: 0, id: 1, body: encode(Hello(workerName: "greedy", numWorkers: Int.max)))
            ))
        seeds.append(
            (
                "bad-hello-index",
                message(.hello, peer: 0, worker: 7, id: 1, body: encode(Hello(workerName: "x", numWorkers: 2)))
            ))
        seeds.append(("bad-pull-repeated", start + pull(0, id: 3, step: 1, [String](repeating: "enc/bias", count: 30))))
        seeds.append(("bad-pull-unknown", start + pull(0, id: 3, step: 1, ["no/such/variable"])))
        seeds.append(
            (
                "bad-push-size",
                start + message(.push, peer: 0, id: 3, step: 1, body: names(["enc/bias"]), tensors: [[1, 2, 3]])
            ))
        seeds.append(
            (
                "bad-push-nan",
                start
                    + message(
                        .push, peer: 0, id: 3, step: 1, body: names(["enc/bias"]),
                        tensors: [[Float](repeating: .nan, count: 8)])
            ))
        seeds.append(
            ("bad-push-3e38", start + push(0, id: 3, step: 1, fill: 3e38) + push(1, id: 3, step: 1, fill: 3e38)))
        seeds.append(
            (
                "bad-push-count",
                start
                    + message(
                        .push, peer: 0, id: 3, step: 1, body: names(["enc/bias", "dec/kernel"]),
                        tensors: [[Float](repeating: 0, count: 8)])
            ))
        seeds.append(
            (
                "bad-wrong-identity",
                start
                    + push(1, id: 3, step: 1).enumerated().map {
                        $0.offset == 0 ? FuzzScript.messageByte(peer: 2, frames: 5) : $0.element
                    }
            ))
        var kind = Header(kind: .push, workerID: 0, requestID: 3, step: 1, incarnation: 1000).encoded
        kind[3] = 200
        seeds.append(("bad-kind", start + FuzzScript.encode(peer: 0, frames: [kind, names([])])))
        seeds.append(("bad-reply-kind", start + message(.values, peer: 0, id: 3, body: names([]))))
        var version = Header(kind: .pull, workerID: 0, requestID: 3, incarnation: 1000).encoded
        version[2] = 9
        seeds.append(("bad-version", start + FuzzScript.encode(peer: 0, frames: [version, names([])])))
        let header = Header(kind: .pull, workerID: 0, requestID: 3, incarnation: 1000).encoded
        seeds.append(
            ("bad-truncated-header", start + FuzzScript.encode(peer: 0, frames: [Array(header.prefix(17)), names([])])))
        seeds.append(("bad-one-frame", start + FuzzScript.encode(peer: 0, frames: [header])))
        var count = Header(kind: .push, workerID: 0, requestID: 3, step: 1, incarnation: 1000, tensorCount: 5).encoded
        count[32] = 5
        seeds.append(("bad-tensor-count", start + FuzzScript.encode(peer: 0, frames: [count, names(["enc/bias"])])))
        seeds.append(
            ("bad-body-json", start + FuzzScript.encode(peer: 0, frames: [header, Array("{\"names\": [1, {}]".utf8)])))
        seeds.append(("bad-no-hello", push(2, id: 1, step: 1)))
        seeds.append(
            (
                "bad-packed-size",
                packedHello + register(0)
                    + message(.push, peer: 0, id: 3, step: 1, body: names(model.map(\.name)), tensors: [[1, 2, 3]])
            ))
        seeds.append(
            (
                "bad-packed-split",
                packedHello + register(0) + push(0, id: 3, step: 1)
            ))
        return seeds
    }

    /// Writes every seed to `directory` (created if missing); returns how many.
    static func write(to directory: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let seeds = all
        for (name, bytes) in seeds {
            try Data(bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        return seeds.count
    }
}
