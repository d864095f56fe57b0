import Foundation
import Logging
import Optimizers
import SafeTensors
import Telemetry
import Testing
import Transport
import Wire

@testable import ParameterServer

/// Checkpoints that lie or are damaged, and directories that stop taking writes.
@Suite("Checkpoint damage")
struct CheckpointDamageTests {
    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-dmg-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    static let config = ServerConfig(name: "ps-0", optimizer: OptimizerConfig(kind: .adam))

    static func state(_ x: Float = 1) -> ServerState {
        ServerState(
            variables: [
                SavedVariable(
                    name: "dense/kernel", shape: [3, 2], dtype: "float32", value: Array(repeating: x, count: 6),
                    first: Array(repeating: 0.1, count: 6), second: Array(repeating: 0.2, count: 6), step: 3,
                    registeredBy: "worker 0"),
                SavedVariable(
                    name: "dense/bias", shape: [2], dtype: "float32", value: [x, -x], first: [0, 0], second: [0, 0],
                    step: 3, registeredBy: "worker 0"),
            ], updates: 3, syncStep: 2, numWorkers: 2,
            workers: [SavedWorker(index: 1, incarnation: 9, lastPushRequest: 4, lastPushedStep: 2, done: false)])
    }

    /// A version-1 checkpoint (no checksum) with the metadata and tensors given, as a hand-edited file would be.
    static func crafted(
        _ change: (inout [String: String]) -> Void = { _ in },
        tensors: [(name: String, shape: [Int], scalars: [Float])]? = nil
    ) -> Data {
        var meta = [
            "format": "scoped-trainer-ps/1", "server": "ps-0", "mode": "async", "optimizer": "adam",
            "optimizer_kind": "adam", "updates": "3", "step": "2", "sequence": "1", "num_workers": "2", "scaling": "",
            "variables": #"[{"dtype":"float32","name":"v","registeredBy":"worker 0","step":3}]"#,
            "workers": #"[{"done":false,"incarnation":9,"index":1,"lastPushRequest":4,"lastPushedStep":2}]"#,
        ]
        change(&meta)
        return SafeTensors.encode(
            tensors ?? [("v", [2], [0.5, -0.5]), ("optimizer/v/m", [2], [0, 0]), ("optimizer/v/v", [2], [0, 0])],
            metadata: meta)
    }

    struct Lie: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: Data
        let words: [String]
        var testDescription: String { name }
    }

    static let lies: [Lie] = [
        Lie(name: "updates 2^64 - 1", bytes: crafted { $0["updates"] = "18446744073709551615" }, words: ["updates"]),
        Lie(name: "updates -1", bytes: crafted { $0["updates"] = "-1" }, words: ["updates"]),
        Lie(name: "updates +3", bytes: crafted { $0["updates"] = "+3" }, words: ["updates"]),
        Lie(name: "step 2^63", bytes: crafted { $0["step"] = "9223372036854775808" }, words: ["step"]),
        Lie(name: "no step", bytes: crafted { $0["step"] = nil }, words: ["step"]),
        Lie(name: "num_workers 0", bytes: crafted { $0["num_workers"] = "0" }, words: ["num_workers"]),
        Lie(
            name: "num_workers 2000 past --max-workers", bytes: crafted { $0["num_workers"] = "2000" },
            words: ["num_workers", "--max-workers"]),
        Lie(
            name: "a worker slot past num_workers",
            bytes: crafted {
                $0["workers"] = #"[{"done":false,"incarnation":9,"index":2,"lastPushRequest":4,"lastPushedStep":2}]"#
            },
            words: ["index 2"]),
        Lie(
            name: "two records for one worker",
            bytes: crafted {
                $0["workers"] =
                    #"[{"done":false,"incarnation":9,"index":1,"lastPushRequest":4,"lastPushedStep":2},{"done":true,"incarnation":1,"index":1,"lastPushRequest":1,"lastPushedStep":1}]"#
            }, words: ["worker 1", "two records"]),
        Lie(
            name: "a worker's lastPushedStep of 2^64 - 1",
            bytes: crafted {
                $0["workers"] =
                    #"[{"done":false,"incarnation":9,"index":1,"lastPushRequest":4,"lastPushedStep":18446744073709551615}]"#
            }, words: ["lastPushedStep"]),
        Lie(
            name: "a worker index of -1",
            bytes: crafted {
                $0["workers"] = #"[{"done":false,"incarnation":9,"index":-1,"lastPushRequest":4,"lastPushedStep":2}]"#
            },
            words: ["workers"]),
        Lie(
            name: "a worker's done flag that is a number",
            bytes: crafted {
                $0["workers"] = #"[{"done":1,"incarnation":9,"index":1,"lastPushRequest":4,"lastPushedStep":2}]"#
            },
            words: ["workers", "done"]),
        Lie(
            name: "a variable step of Int.max",
            bytes: crafted {
                $0["variables"] = #"[{"dtype":"float32","name":"v","registeredBy":"w","step":9223372036854775807}]"#
            },
            words: ["v", "update count"]),
        Lie(
            name: "a variable step that is true",
            bytes: crafted { $0["variables"] = #"[{"dtype":"float32","name":"v","registeredBy":"w","step":true}]"# },
            words: ["variables", "step"]),
        Lie(
            name: "one variable too many",
            bytes: crafted {
                $0["variables"] =
                    #"[{"dtype":"float32","name":"v","registeredBy":"w","step":1},{"dtype":"float32","name":"u","registeredBy":"w","step":1}]"#
            }, words: ["u", "missing"]),
        Lie(
            name: "a variable listed twice",
            bytes: crafted {
                $0["variables"] =
                    #"[{"dtype":"float32","name":"v","registeredBy":"w","step":1},{"dtype":"float32","name":"v","registeredBy":"w","step":1}]"#
            }, words: ["v", "twice"]),
        Lie(
            name: "an optimizer slot of another shape",
            bytes: crafted(tensors: [
                ("v", [2, 1], [0.5, -0.5]), ("optimizer/v/m", [1, 2], [0, 0]), ("optimizer/v/v", [2, 1], [0, 0]),
            ]),
            words: ["optimizer/v/m", "shape"]),
        Lie(
            name: "an optimizer slot of another size",
            bytes: crafted(tensors: [
                ("v", [2], [0.5, -0.5]), ("optimizer/v/m", [3], [0, 0, 0]), ("optimizer/v/v", [2], [0, 0]),
            ]),
            words: ["optimizer/v/m", "shape"]),
        Lie(
            name: "a slot of another optimizer",
            bytes: crafted(tensors: [("v", [2], [0.5, -0.5]), ("optimizer/v/momentum", [2], [0, 0])]),
            words: ["optimizer/v/momentum", "adam"]),
        Lie(
            name: "a tensor no variable lists",
            bytes: crafted(tensors: [("v", [2], [0.5, -0.5]), ("stray", [1], [1])]), words: ["stray"]),
        Lie(
            name: "NaN in a variable",
            bytes: crafted(tensors: [
                ("v", [2], [0.5, .nan]), ("optimizer/v/m", [2], [0, 0]), ("optimizer/v/v", [2], [0, 0]),
            ]),
            words: ["v", "nan"]),
        Lie(
            name: "infinity in an optimizer slot",
            bytes: crafted(tensors: [
                ("v", [2], [0.5, 1]), ("optimizer/v/m", [2], [0, 0]), ("optimizer/v/v", [2], [.infinity, 0]),
            ]),
            words: ["optimizer/v/v", "inf"]),
        Lie(
            name: "a variable of rank 9",
            bytes: crafted(tensors: [("v", [1, 1, 1, 1, 1, 1, 1, 1, 2], [0.5, -0.5])]), words: ["v", "rank 9"]),
        Lie(
            name: "a scaling that is not a label", bytes: crafted { $0["scaling"] = String(repeating: "x", count: 65) },
            words: ["scaling"]),
        Lie(name: "an unknown format", bytes: crafted { $0["format"] = "scoped-trainer-ps/9" }, words: ["format"]),
        Lie(
            name: "format 2 without a checksum", bytes: crafted { $0["format"] = "scoped-trainer-ps/2" },
            words: ["checksum"]),
    ]

    @Test("checkpoint metadata that lies is refused naming the field, never trusted or trapped on", arguments: lies)
    func lyingMetadata(_ lie: Lie) throws {
        do {
            _ = try CheckpointStore.decodeState(lie.bytes, path: "ps-0-00000001.safetensors")
            Issue.record("\(lie.name) was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("ps-0-00000001.safetensors"), "\(text)")
            for w in lie.words { #expect(text.contains(w), "the message should name \(w): \(text)") }
        }
    }

    @Test("a version-1 checkpoint without a checksum still restores, and says it is unverified")
    func versionOneRestores() throws {
        let (state, verified) = try CheckpointStore.decodeState(Self.crafted(), path: "old.safetensors")
        #expect(!verified)
        #expect(state.variables.map(\.name) == ["v"] && state.updates == 3 && state.numWorkers == 2)
    }

    @Test("every single-bit flip and every truncation of a checkpoint is refused")
    func everyFlipAndCutIsRefused() throws {
        let good = CheckpointStore.encode(Self.state(), config: Self.config, sequence: 1)
        let (back, verified) = try CheckpointStore.decodeState(good, path: "good")
        #expect(verified && back == Self.state())
        var accepted: [Int] = []
        for bit in 0..<(good.count * 8) {
            var bad = good
            bad[bit / 8] ^= UInt8(1 << (bit % 8))
            if (try? CheckpointStore.decodeState(bad, path: "bad")) != nil { accepted.append(bit) }
        }
        #expect(accepted.isEmpty, "flips of bits \(accepted.prefix(10)) of \(good.count * 8) were restored")
        for n in 0..<good.count {
            #expect((try? CheckpointStore.decodeState(good.prefix(n), path: "cut")) == nil, "cut to \(n) bytes")
        }
        print("checkpoint damage: \(good.count * 8) single-bit flips and \(good.count) truncations of a \(good.count)-byte checkpoint, \(accepted.count) restored")
    }

    @Test("a damaged newest file is reported with what is wrong, and the older file restored is named")
    func damagedNewestIsReported() throws {
        try withDirectory { dir in
            let store = try CheckpointStore(directory: dir, name: "ps-0")
            let older = try #require(try store.write(Self.state(1), config: Self.config))
            let newest = try #require(try store.write(Self.state(2), config: Self.config))
            var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
            bytes = bytes.prefix(bytes.count - 3)  // torn
            try bytes.write(to: URL(fileURLWithPath: newest))
            let r = try #require(try CheckpointStore(directory: dir, name: "ps-0").restore(limits: ServerLimits()))
            #expect(r.path == older && r.state == Self.state(1) && r.checksumVerified)
            #expect(r.skipped.map(\.path) == [newest])
            #expect(r.skipped.first?.reason.contains("truncated") == true, "\(r.skipped)")
            // --strict-restore: no fall back; the error names the damaged file.
            #expect(throws: CheckpointError.self) {
                try CheckpointStore(directory: dir, name: "ps-0").restore(limits: ServerLimits(), strict: true)
            }
            do {
                _ = try CheckpointStore(directory: dir, name: "ps-0").restore(limits: ServerLimits(), strict: true)
            } catch {
                #expect("\(error)".contains(newest) && "\(error)".contains("--strict-restore"), "\(error)")
            }
        }
    }

    @Test("a newer unreadable file listing one variable too many does not make later checkpoints be skipped")
    func unreadableNewerFileDoesNotBlockWrites() throws {
        try withDirectory { dir in
            let store = try CheckpointStore(directory: dir, name: "ps-0")
            try store.write(Self.state(1), config: Self.config)
            // Sequence 2: its metadata lists three variables, its data holds two.
            let lying = Self.crafted(
                {
                    $0["variables"] =
                        #"[{"dtype":"float32","name":"a","registeredBy":"w","step":1},{"dtype":"float32","name":"b","registeredBy":"w","step":1},{"dtype":"float32","name":"c","registeredBy":"w","step":1}]"#
                }, tensors: [("a", [1], [1]), ("b", [1], [1])])
            try lying.write(to: URL(fileURLWithPath: "\(dir)/ps-0-00000002.safetensors"))
            let again = try CheckpointStore(directory: dir, name: "ps-0")
            let r = try #require(try again.restore(limits: ServerLimits()))
            #expect(r.state.variables.count == 2 && r.skipped.count == 1)
            #expect(again.newestVariableCount == 2)
            let written = try again.write(r.state, config: Self.config)
            #expect(written?.hasSuffix("ps-0-00000003.safetensors") == true)
            // And without a restore first (the count is learned from the newest file that reads).
            let fresh = try CheckpointStore(directory: try #require(Optional(dir)), name: "ps-0")
            #expect(try fresh.write(Self.state(3), config: Self.config) != nil)
        }
    }

    @Test("a checkpoint beyond the server's limits is refused naming the limit")
    func beyondLimits() throws {
        var limits = ServerLimits()
        limits.maxVariableElements = 4
        let data = CheckpointStore.encode(Self.state(), config: Self.config, sequence: 1)
        #expect(throws: CheckpointError.self) { try CheckpointStore.decodeState(data, path: "p", limits: limits) }
        limits = ServerLimits()
        limits.maxVariables = 1
        do { _ = try CheckpointStore.decodeState(data, path: "p", limits: limits) } catch {
            #expect("\(error)".contains("--max-variables 1"), "\(error)")
        }
        limits = ServerLimits()
        limits.maxWorkers = 1
        do { _ = try CheckpointStore.decodeState(data, path: "p", limits: limits) } catch {
            #expect("\(error)".contains("--max-workers 1"), "\(error)")
        }
    }

    @Test("retries back off: 1 s, 2 s, 4 s... up to the maximum, and start over after a success")
    func backoff() {
        var b = Backoff(initial: 1, maximum: 10)
        #expect(b.allows(now: 0))
        #expect((0..<6).map { _ in b.failed(now: 0) } == [1, 2, 4, 8, 10, 10])
        #expect(!b.allows(now: 9.9) && b.allows(now: 10))
        b.succeeded()
        #expect(b.allows(now: 0) && b.failed(now: 0) == 1)
    }

    @Test("a checkpoint directory that stops taking writes is retried with backoff, counted, not every tick")
    func brokenDirectoryBacksOff() throws {
        try withDirectory { dir in
            var config = Driver.config(.async)
            config.checkpointSeconds = 30
            let d = Driver(config)
            d.form(1, [spec("a/kernel", [2, 3])])
            let store = try CheckpointStore(directory: dir, name: "ps-0")
            var now = 0.0
            let loop = ServerLoop(
                core: d.core, transport: InProcessHub().server(), store: store, logger: Logger(label: "test"),
                clock: { now })
            // The directory is replaced by a file: every write fails (as root, permissions would not stop it).
            try FileManager.default.removeItem(atPath: dir)
            #expect(FileManager.default.createFile(atPath: dir, contents: Data([1])))
            // 100 s of 50 ms ticks, each asking for a checkpoint.
            for tick in 0..<2000 {
                now = Double(tick) * 0.05
                _ = loop.perform([.checkpoint(reason: "test")])
            }
            // Tries at 0, 1, 3, 7, 15, 31, 61, 91: eight, not 2,000.
            #expect(loop.checkpointFailures == 8, "\(loop.checkpointFailures)")
            #expect(loop.checkpointRetry.delay == 30)
        }
    }

    @Test("failed periodic checkpoints are counted in ps_checkpoint_failures_total")
    func failuresMetric() {
        let registry = Telemetry.bootstrap()
        let metrics = ServerMetrics()
        metrics.observeCheckpointFailures(2)
        metrics.observeCheckpointFailures(3)
        metrics.observeCheckpointFailures(3)
        let text = registry.emitToString()
        #expect(text.contains("# TYPE ps_checkpoint_failures_total counter"), "\(text)")
        #expect(text.contains("ps_checkpoint_failures_total 3"), "\(text)")
    }
}
