import Foundation
import Optimizers
import SafeTensors
import Testing
import Wire

@testable import ParameterServer

/// Checkpoint files on a real disk, in a temporary directory removed after each test.
@Suite("Checkpoint store")
struct CheckpointStoreTests {
    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    func trained() -> (ServerCore, ServerConfig) {
        let config = Driver.config(.async) { $0.optimizer = OptimizerConfig(kind: .adam, learningRate: 0.1) }
        let d = Driver(config)
        d.form(1, [spec("a/kernel", [2, 3]), spec("a/bias", [3])])
        _ = d.push(0, step: 1, ["a/kernel": [1, 2, 3, 4, 5, 6], "a/bias": [1, -1, 0.5]], id: 7)
        return (d.core, config)
    }

    @Test("a checkpoint holds variables, optimizer slots and dedupe records, and restores to the same state")
    func roundTrip() throws {
        try withDirectory { dir in
            let (core, config) = trained()
            let store = try CheckpointStore(directory: dir, name: "ps-0")
            let path = try #require(try store.write(core.snapshot(), config: config))
            #expect(path.hasSuffix("/ps-0-00000001.safetensors"))
            let tensors = try SafeTensors.read(path)
            #expect(Set(tensors.keys) == ["a/kernel", "a/bias", "optimizer/a/kernel/m", "optimizer/a/kernel/v", "optimizer/a/bias/m", "optimizer/a/bias/v"])
            let meta = try SafeTensors.metadata(path)
            #expect(meta["server"] == "t" && meta["mode"] == "async" && meta["updates"] == "1")
            #expect(meta["optimizer"]?.hasPrefix("adam") == true)
            let (state, restoredFrom) = try #require(try CheckpointStore(directory: dir, name: "ps-0").newest())
            #expect(restoredFrom == path)
            #expect(state == core.snapshot())
            #expect(state.workers.first?.lastPushRequest == 7)
        }
    }

    @Test("the newest K are kept; the sequence continues after a restart; an emptier state never replaces a full one")
    func rotation() throws {
        try withDirectory { dir in
            let (core, config) = trained()
            let store = try CheckpointStore(directory: dir, name: "ps-1", keep: 2)
            for _ in 0..<4 { try store.write(core.snapshot(), config: config) }
            #expect(store.files().map(\.sequence) == [3, 4])
            let again = try CheckpointStore(directory: dir, name: "ps-1", keep: 2)
            #expect(again.sequence == 4)
            var fewer = core.snapshot()
            fewer.variables.removeLast()
            #expect(try again.write(fewer, config: config) == nil)
            #expect(try again.write(ServerState(variables: [], updates: 0, syncStep: 0, numWorkers: nil, workers: []), config: config) == nil)
            #expect(again.files().map(\.sequence) == [3, 4])
            // Other servers' files in the same directory are not touched.
            try CheckpointStore(directory: dir, name: "ps-10").write(core.snapshot(), config: config)
            #expect(again.files().count == 2)
        }
    }

    @Test("an unusable directory is an error at start, naming it; a torn newest file falls back to the previous one")
    func failures() throws {
        try withDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let file = dir + "/plain-file"
            FileManager.default.createFile(atPath: file, contents: Data([1]))
            #expect(throws: CheckpointError.self) { try CheckpointStore(directory: file, name: "x") }
            #expect(throws: CheckpointError.self) { try CheckpointStore(directory: file + "/sub", name: "x") }
            if getuid() != 0 {  // root writes anywhere
                let locked = dir + "/locked"
                try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
                chmod(locked, 0o500)
                #expect(throws: CheckpointError.self) { try CheckpointStore(directory: locked, name: "x") }
            }
            let (core, config) = trained()
            let store = try CheckpointStore(directory: dir, name: "ps-2")
            try store.write(core.snapshot(), config: config)
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/ps-2-00000002.safetensors"))
            let (_, path) = try #require(try CheckpointStore(directory: dir, name: "ps-2").newest())
            #expect(path.hasSuffix("ps-2-00000001.safetensors"))
        }
    }
}
