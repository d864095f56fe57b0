import Foundation
import Optimizers
import ParameterServer
import SafeTensors
import Wire

/// The seed corpus: real checkpoints of every optimizer (format 2, checksummed), an older unchecksummed
/// one (whose metadata mutations reach the checkpoint checks past the checksum), plain safetensors files
/// (F32, F64, metadata only), and the crafted files of issue 18 that trapped the server.
enum Seeds {
    static func state(workers: Int) -> ServerState {
        ServerState(
            variables: [
                SavedVariable(
                    name: "encoder/lstm_cell/kernel", shape: [3, 4], dtype: "float32",
                    value: (0..<12).map { Float($0) * 0.25 },
                    first: (0..<12).map { Float($0) * 0.01 }, second: (0..<12).map { Float($0) * 0.001 }, step: 5,
                    registeredBy: "worker 0"),
                SavedVariable(
                    name: "encoder/lstm_cell/bias", shape: [4], dtype: "float32", value: [0.5, -0.5, 1, 0],
                    first: [0, 0, 0, 0],
                    second: [0, 0, 0, 0], step: 5, registeredBy: "worker 0"),
                SavedVariable(
                    name: "dense/scalar", shape: [], dtype: "float32", value: [2], first: [0.1], second: [0.2], step: 1,
                    registeredBy: "worker 1"),
            ], updates: 9, syncStep: 4, numWorkers: workers, scaling: "seasonal:12",
            workers: (0..<UInt32(workers)).map {
                SavedWorker(
                    index: $0, incarnation: 1000 + UInt64($0), lastPushRequest: 7, lastPushedStep: 4, done: $0 == 1)
            })
    }

    static func checkpoint(_ kind: OptimizerConfig.Kind, mode: SyncMode, workers: Int) -> Data {
        CheckpointStore.encode(
            state(workers: workers),
            config: ServerConfig(name: "ps-0", mode: mode, optimizer: OptimizerConfig(kind: kind)),
            sequence: 3)
    }

    /// A file from a header given as JSON text and raw data, with the header length stated (or the true one).
    static func raw(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
        var out = Data()
        var n = (length ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: data)
        return out
    }

    /// A version-1 checkpoint (no checksum) with metadata changed by `change`.
    static func versionOne(_ change: (inout [String: String]) -> Void = { _ in }) -> Data {
        var meta = [
            "format": "scoped-trainer-ps/1", "server": "ps-0", "mode": "async", "optimizer": "adam",
            "optimizer_kind": "adam",
            "updates": "3", "step": "2", "sequence": "1", "num_workers": "2", "scaling": "relative",
            "variables": #"[{"dtype":"float32","name":"v","registeredBy":"worker 0","step":3}]"#,
            "workers": #"[{"done":false,"incarnation":9,"index":1,"lastPushRequest":4,"lastPushedStep":2}]"#,
        ]
        change(&meta)
        return SafeTensors.encode(
            [("v", [2], [0.5, -0.5]), ("optimizer/v/m", [2], [0.1, 0]), ("optimizer/v/v", [2], [0.01, 0])],
            metadata: meta)
    }

    static var all: [(String, Data)] {
        let two: [UInt8] = [Float(1), Float(2)].withUnsafeBytes { Array($0) }
        var f64: [UInt8] = []
        for d in [1.5, -2.25, 1e-3] { withUnsafeBytes(of: d) { f64 += $0 } }
        return [
            ("checkpoint-adam-async", checkpoint(.adam, mode: .async, workers: 2)),
            ("checkpoint-momentum-sync", checkpoint(.momentum, mode: .sync, workers: 3)),
            ("checkpoint-sgd-async", checkpoint(.sgd, mode: .async, workers: 1)),
            ("checkpoint-v1-no-checksum", versionOne()),
            ("checkpoint-v1-updates-huge", versionOne { $0["updates"] = "18446744073709551615" }),
            ("checkpoint-v1-step-2-63", versionOne { $0["step"] = "9223372036854775808" }),
            (
                "checkpoint-v1-variable-too-many",
                versionOne {
                    $0["variables"] =
                        #"[{"dtype":"float32","name":"v","registeredBy":"w","step":1},{"dtype":"float32","name":"u","registeredBy":"w","step":1}]"#
                }
            ),
            (
                "plain-f32-with-metadata",
                SafeTensors.encode([("a/b", [2, 1], [1, 2]), ("c", [0], [])], metadata: ["k": "v"])
            ),
            (
                "plain-f32-checksummed",
                SafeTensors.encode([("x", [3], [1, 2, 3])], metadata: ["step": "1"], checksum: true)
            ),
            ("plain-f64", raw(#"{"w":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}}"#, data: f64)),
            ("plain-metadata-only", raw(#"{"__metadata__":{"format":"x"}}"#)),
            ("hostile-header-length-int-max", raw("{}", length: 0x7FFF_FFFF_FFFF_FFFF)),
            ("hostile-negative-offsets", raw(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: two)),
            (
                "hostile-offsets-near-int-max",
                raw(
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775807]}}"#,
                    data: two)
            ),
            (
                "hostile-shape-2-32-squared",
                raw(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: two)
            ),
            (
                "hostile-overlap",
                raw(
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    data: two)
            ),
        ]
    }

    /// Writes every seed to `directory` (created if missing); returns how many.
    static func write(to directory: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let seeds = all
        for (name, bytes) in seeds {
            try bytes.write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        return seeds.count
    }
}
