import Foundation
import Logging
import ParameterServer
import Testing
import SafeTensors
import VariableScopes
import Wire

@testable import WorkerRuntime

/// Checkpoints written by real server rules, from a worker with one partitioning, restored into a model
/// with any other (TensorFlow's Saver does the same with `SaveSliceInfo`).
@Suite("Restore across partitionings")
struct RestoreAcrossPartitionsTests {
    /// A model of three variables under `partitioner` (nil: none): a 2-D one, a 1-D one and a small one.
    func model(_ partitioner: Partitioner?, seed: UInt64 = 9) throws -> Graph {
        let g = Graph(seed: seed)
        try g.variableScope("net", partitioner: partitioner) { _ in
            _ = try g.getVariable("kernel", shape: [7, 4])
            _ = try g.getVariable("bias", shape: [5], initializer: .constant(0.25))
            _ = try g.getVariable("out", shape: [4, 3])
        }
        return g
    }

    static let names = ["net/kernel", "net/bias", "net/out"]

    func wholes(_ g: Graph) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for n in Self.names { out[n] = Array(g.storedVariable(n)!.value) }
        return out
    }

    /// Registers `g`'s values on `servers` in-process servers (values travel in the register) and writes
    /// each server's checkpoint into a new directory.
    func checkpoint(_ g: Graph, servers: Int) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("restore-parts-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ps = (0..<servers).map { InProcessServer(ServerConfig(name: "ps-\($0)")) }
        defer { for p in ps { p.shutdown() } }
        var settings = RemoteSettings(taskIndex: 0, numWorkers: 1, seed: 1)
        settings.registerValues = true
        let remote = try RemoteExchange(
            servers: (0..<servers).map { "p:\($0 + 1)" }, transports: ps.map { $0.hub.client() }, settings: settings,
            logger: Logger(label: "w"))
        _ = try remote.start(variables: g.trainableVariables)
        for (i, p) in ps.enumerated() {
            let data = CheckpointStore.encode(p.loop.core.snapshot(), config: p.loop.core.config, sequence: 1)
            try data.write(to: URL(fileURLWithPath: "\(dir)/ps-\(i)-00000001.safetensors"))
        }
        return dir
    }

    /// A partitioner along axis 1 for 2-D variables, none for others (TensorFlow's would refuse a 1-D one).
    static let columns = Partitioner { shape, _ in shape.count == 2 ? [1, min(2, shape[1])] : shape.map { _ in 1 } }

    @Test("none → 2 parts → 3 parts → along columns → none: every value comes back exactly")
    func roundTrip() throws {
        let partitioners: [(String, Partitioner?)] = [
            ("none", nil), ("2 parts", .fixedSize(2)), ("3 parts", .fixedSize(3)), ("columns", Self.columns), ("none again", nil),
        ]
        // Values no initializer makes, so that a restore that did nothing is seen.
        let source = try model(nil)
        for n in Self.names {
            let v = source.storedVariable(n)!
            v.assign((0..<v.count).map { Float($0) * 0.5 + Float(n.count) })
        }
        let expected = wholes(source)
        var current = source
        for (k, (label, p)) in partitioners.enumerated() {
            let dir = try checkpoint(current, servers: 1 + k % 2)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let next = try model(p, seed: UInt64(100 + k))
            #expect(wholes(next) != expected)
            try Checkpoints.restore(next, from: dir)
            #expect(wholes(next) == expected, "into \(label)")
            // The parts hold their slices of it too (what is trained and pushed).
            for v in next.trainableVariables { #expect(Array(v.value).allSatisfy { $0.isFinite }) }
            current = next
        }
    }

    @Test("the servers' checkpoints name each part and record its slice; a part that does not fit is damage, named")
    func sliceRecords() throws {
        let g = try model(.fixedSize(3))
        let dir = try checkpoint(g, servers: 2)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var slices: [String: SliceSpec] = [:]
        for f in Checkpoints.newestFiles(in: dir) {
            slices.merge(TensorSlice.records(in: try SafeTensors.metadata(f))) { a, _ in a }
        }
        #expect(slices["net/kernel/part_1"] == SliceSpec(fullName: "net/kernel", fullShape: [7, 4], offset: [3, 0]))
        #expect(slices["net/bias/part_2"] == SliceSpec(fullName: "net/bias", fullShape: [5], offset: [4]))
        let bad = SliceSpec(fullName: "net/kernel", fullShape: [7, 4], offset: [6, 0])
        let tensors: [String: (shape: [Int], scalars: [Float])] = ["net/kernel/part_0": ([3, 4], [Float](repeating: 1, count: 12))]
        #expect(throws: TensorSlice.Error.self) { _ = try TensorSlice.assemble(tensors, slices: ["net/kernel/part_0": bad]) }
        // One part of three: a gap, named.
        #expect(throws: TensorSlice.Error.self) {
            _ = try TensorSlice.assemble(
                tensors, slices: ["net/kernel/part_0": SliceSpec(fullName: "net/kernel", fullShape: [7, 4], offset: [0, 0])])
        }
        // Hostile numbers: an overflowing whole is refused, not a trap.
        #expect(throws: TensorSlice.Error.self) {
            _ = try TensorSlice.assemble(
                tensors, slices: ["net/kernel/part_0": SliceSpec(fullName: "w", fullShape: [Int.max, 4], offset: [Int.max - 1, 0])])
        }
    }
}
