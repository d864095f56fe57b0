import Foundation
import Tensors
import Testing

@testable import VariableScopes

/// What TensorFlow 2.21 did with its three partitioners (`benchmarks/anchors/tf_partitions.py` ->
/// `Fixtures/partitions.json`).
struct PartitionFixture: Decodable, Sendable {
    struct Part: Decodable, Sendable, Equatable, CustomStringConvertible {
        let name: String
        let shape: [Int]
        let fullName: String?
        let fullShape: [Int]?
        let offset: [Int]?
        let spec: String?
        var description: String { "\(name) \(shape) \(spec ?? "whole")" }
    }
    /// The seed model built under a partitioner.
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let partitioner: String
        let applies: String
        let hidden: Int
        let hidden2: Int
        let inputDim: Int
        let window: Int
        let horizon: Int
        let error: String?
        let variables: [Part]
        var testDescription: String {
            "\(partitioner) on the \(applies == "model" ? "model" : "dense weights"), hidden \(hidden)"
        }
    }
    /// One get_variable program under a partitioned scope `p`.
    struct Edge: Decodable, Sendable, CustomTestStringConvertible {
        let name: String
        let partitioner: String
        let calls: [Call]
        let error: String?
        let variables: [Part]
        var testDescription: String { name }
        struct Call: Decodable, Sendable {
            let name: String
            let shape: [Int]
            let reuse: Bool
            init(from decoder: Decoder) throws {
                var c = try decoder.unkeyedContainer()
                name = try c.decode(String.self)
                shape = try c.decode([Int].self)
                reuse = try c.decode(Bool.self)
            }
        }
    }
    /// A partitioner called directly.
    struct PartitionerCall: Decodable, Sendable, CustomTestStringConvertible {
        let partitioner: String
        let maxShards: Int?
        let shape: [Int]
        let dtype: String
        let dtypeSize: Int
        let partitions: [Int]?
        let error: String?
        var testDescription: String {
            "\(partitioner)\(maxShards.map { " maxShards \($0)" } ?? "") on \(shape) \(dtype)"
        }
    }
    let tensorflow: String
    let cases: [Case]
    let edges: [Edge]
    let calls: [PartitionerCall]

    static let loaded: PartitionFixture = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/partitions.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try! decoder.decode(PartitionFixture.self, from: Data(contentsOf: url))
    }()
}

/// The seed's variables as `tf_partitions.py` makes them: encoder and decoder LSTM cells, and the decoder's
/// dense weights by `getVariable`, under `variableScope("lstm_cell_decoder", reuse: t > 0)` at every step.
/// Returns the decoder's five variables at each step.
@discardableResult
func buildSeedVariables(
    _ g: Graph, hidden: Int, hidden2: Int, inputDim: Int, window: Int, horizon: Int,
    densePartitioner: Partitioner? = nil
) throws -> [[Variable]] {
    let (n, m) = (hidden, hidden2)
    func cell(inputSize: Int) throws -> [Variable] {
        try g.variableScope("lstm_cell") { _ in
            [
                try g.getVariable("kernel", shape: [inputSize + n, 4 * n]),
                try g.getVariable("bias", shape: [4 * n], initializer: .zeros),
            ]
        }
    }
    try g.variableScope("encoder") { _ in
        try g.variableScope("rnn") { rnn in
            for t in 0..<window {
                if t > 0 { rnn.reuseVariables() }
                try cell(inputSize: inputDim)
            }
        }
    }
    var steps: [[Variable]] = []
    for t in 0..<horizon {
        try g.variableScope("lstm_cell_decoder", reuse: t > 0) { _ in
            let lstm = try g.variableScope("rnn") { _ in try cell(inputSize: m) }
            let dense = [
                try g.getVariable("weights_tilde", shape: [2 * n, m], partitioner: densePartitioner),
                try g.getVariable("bias_tilde", shape: [1, m], initializer: .zeros, partitioner: densePartitioner),
                try g.getVariable("weights_target", shape: [m, 1], partitioner: densePartitioner),
            ]
            steps.append(lstm + dense)
        }
    }
    return steps
}

/// A graph's variables in the fixture's terms.
func parts(_ g: Graph) -> [PartitionFixture.Part] {
    g.globalVariables.map { v in
        PartitionFixture.Part(
            name: v.name, shape: v.shape, fullName: v.sliceInfo?.fullName, fullShape: v.sliceInfo?.fullShape,
            offset: v.sliceInfo?.offset, spec: v.sliceInfo?.spec)
    }
}

@Suite("TensorFlow's partitioners: part counts, names, shapes and offsets as TensorFlow 2.21 makes them")
struct PartitionerTests {
    static let fixture = PartitionFixture.loaded

    @Test("the fixtures were written by TensorFlow 2.21 and cover all three partitioners, split and unsplit")
    func fixtureCoverage() {
        #expect(Self.fixture.tensorflow.hasPrefix("2.21"))
        let kinds = Set(Self.fixture.cases.map { $0.partitioner.split(separator: ":")[0] })
        #expect(kinds == ["fixed_size", "min_max", "axis_size"])
        for kind in kinds {
            let ok = Self.fixture.cases.filter { $0.partitioner.hasPrefix(kind) && $0.error == nil }
            // Each partitioner splits something and leaves something whole (part_0 alone) in some case.
            #expect(ok.contains { c in c.variables.contains { $0.name.hasSuffix("/part_1") } }, "\(kind)")
            #expect(
                ok.contains { c in
                    c.variables.contains { v in
                        v.name.hasSuffix("/part_0") && !c.variables.contains { $0.name == v.fullName! + "/part_1" }
                    }
                }, "\(kind)")
            #expect(ok.contains { $0.partitioner.hasSuffix(":1") }, "\(kind) along axis 1")
        }
    }

    // One at a time: a hidden-1024 model holds 60 MB of values.
    @Test(
        "the seed model's parts match TensorFlow's: names, own shapes, offsets, full shapes, slice specs",
        .serialized, arguments: PartitionFixture.loaded.cases)
    func seedModel(_ c: PartitionFixture.Case) throws {
        let p = try #require(try PartitionerSpec(parsing: c.partitioner).partitioner())
        let g = Graph()
        var caught: Error?
        do {
            // The whole model under one outer scope: the root scope re-entered, so no name changes. Zeros
            // (names and shapes do not depend on values) keep the 1024 cases quick.
            try g.variableScope(
                g.currentVariableScope, initializer: .zeros, partitioner: c.applies == "model" ? p : nil
            ) { _ in
                try buildSeedVariables(
                    g, hidden: c.hidden, hidden2: c.hidden2, inputDim: c.inputDim, window: c.window,
                    horizon: c.horizon, densePartitioner: c.applies == "model" ? nil : p)
            }
        } catch { caught = error }
        #expect(parts(g) == c.variables)
        #expect((caught != nil) == (c.error != nil), "\(String(describing: caught))")
        if c.error != nil {
            // TensorFlow refuses axis 1 of the rank-1 LSTM bias, after the kernel's parts exist.
            guard
                case .partitionFailed("encoder/rnn/lstm_cell/bias", .axisOutOfRange(1, [4 * c.hidden]))? =
                    caught as? VariableScopeError
            else {
                Issue.record("unexpected error \(String(describing: caught))")
                return
            }
        }
        // The wholes list their parts' slices in order, tiling the full shape along one axis.
        for name in Set(c.variables.compactMap(\.fullName)) {
            let whole = try #require(g.storedVariable(name))
            #expect(whole.partSlices.map(\.spec) == c.variables.filter { $0.fullName == name }.map(\.spec!))
            #expect(whole.parts.map(\.count).reduce(0, +) == elementCount(whole.shape))
        }
    }

    @Test(
        "each partitioner returns what TensorFlow's returns, for every dtype size, or fails where it fails",
        arguments: PartitionFixture.loaded.calls)
    func partitionerCall(_ call: PartitionFixture.PartitionerCall) throws {
        let spec = try PartitionerSpec(parsing: call.partitioner)
        var p = try #require(spec.partitioner())
        if let maxShards = call.maxShards, case .axisSize(let bytes, let axis) = spec {
            p = .variableAxisSize(maxShardBytes: bytes, axis: axis, maxShards: maxShards)
        }
        if let want = call.partitions {
            #expect(try p.partitions(call.shape, call.dtypeSize) == want)
        } else {
            let error = #expect(throws: PartitionError.self) { try p.partitions(call.shape, call.dtypeSize) }
            // TensorFlow's IndexError or ValueError for the axis, its ZeroDivisionError for empty slices.
            switch error {
            case .axisOutOfRange?:
                #expect(call.error!.contains("IndexError") || call.error!.contains("Cannot partition"))
            case .emptySlice?: #expect(call.error!.contains("ZeroDivisionError"))
            default: Issue.record("\(String(describing: error)) for \(call.error!)")
            }
        }
    }

    @Test(
        "the store does what TensorFlow's does beyond splitting: scalars whole, zero-sized axes refused, reuse",
        arguments: PartitionFixture.loaded.edges)
    func edge(_ e: PartitionFixture.Edge) throws {
        let p = try #require(try PartitionerSpec(parsing: e.partitioner).partitioner())
        let g = Graph()
        var caught: Error?
        do {
            for call in e.calls {
                try g.variableScope("p", reuse: call.reuse, partitioner: p) { _ in
                    try g.getVariable(call.name, shape: call.shape)
                }
            }
        } catch { caught = error }
        #expect(parts(g) == e.variables)
        #expect((caught != nil) == (e.error != nil), "\(String(describing: caught))")
        let expected: [String: VariableScopeError] = [
            "zero_rows_fixed": .invalidPartitions(name: "p/z", shape: [0, 3], partitions: [0, 1]),
            "zero_columns_fixed": .partitionedEmpty(name: "p/z", shape: [3, 0]),
            "zero_rows_min_max": .partitionedEmpty(name: "p/z", shape: [0, 5]),
            "zero_rows_axis_size": .partitionFailed(name: "p/z", .emptySlice(shape: [0, 4], axis: 0)),
        ]
        #expect(caught as? VariableScopeError == expected[e.name])
    }

    @Test("under reuse: t > 0 the decoder gets the same parts at every timestep, and no new ones")
    func decoderReusesItsParts() throws {
        let g = Graph()
        let steps = try g.variableScope(g.currentVariableScope, partitioner: .fixedSize(3)) { _ in
            try buildSeedVariables(g, hidden: 32, hidden2: 32, inputDim: 1, window: 4, horizon: 6)
        }
        #expect(steps.count == 6)
        for step in steps.dropFirst() {
            for (v, first) in zip(step, steps[0]) {
                #expect(v === first, "\(v.name)")
                #expect(v.parts.count == first.parts.count && zip(v.parts, first.parts).allSatisfy { $0 === $1 })
            }
        }
        let kernel = try #require(g.storedVariable("lstm_cell_decoder/rnn/lstm_cell/kernel"))
        #expect(kernel.parts.map(\.name) == (0..<3).map { "lstm_cell_decoder/rnn/lstm_cell/kernel/part_\($0)" })
        #expect(steps[0][0] === kernel)
        // Parts only, each once: 4 encoder/decoder LSTM variables of 3 parts, weights_tilde and
        // weights_target in 3, bias_tilde [1, 32] whole as part_0.
        #expect(g.globalVariables.count == 4 * 3 + 3 + 1 + 3)
        #expect(Set(g.globalVariables.map(\.name)).count == g.globalVariables.count)
    }

    @Test("the dtype's size counts: float64 gets twice the parts of float32 under min_max")
    func dtypeSizeReachesThePartitioner() throws {
        let g = Graph()
        let p = Partitioner.minMax(maxPartitions: 100, minSliceBytes: 1024)
        let (f32, f64) = try g.variableScope("p", partitioner: p) { _ in
            (try g.getVariable("a", shape: [64, 16]), try g.getVariable("b", shape: [64, 16], dtype: .float64))
        }
        #expect(f32.parts.count == 4 && f64.parts.count == 8)
    }

    @Test("getVariable's own partitioner overrides the scope's")
    func getVariablePartitionerOverridesScope() throws {
        let g = Graph()
        let v = try g.variableScope("p", partitioner: .fixedSize(2)) { _ in
            try g.getVariable("w", shape: [9, 2], partitioner: .fixedSize(3))
        }
        #expect(v.parts.map(\.shape) == [[3, 2], [3, 2], [3, 2]])
        #expect(v.partSlices.map(\.offset) == [[0, 0], [3, 0], [6, 0]])
    }

    @Test("reusing with a partitioner that splits differently is refused with both partitionings")
    func reuseWithOtherPartitions() throws {
        let g = Graph()
        try g.variableScope("p", partitioner: .minMax(maxPartitions: 4, minSliceBytes: 16)) { _ in
            try g.getVariable("w", shape: [8, 4])
        }
        #expect(throws: VariableScopeError.partitionMismatch(name: "p/w", specified: [2, 1], found: [4, 1])) {
            try g.variableScope("p", reuse: true, partitioner: .variableAxisSize(maxShardBytes: 64)) { _ in
                try g.getVariable("w", shape: [8, 4])
            }
        }
    }

    @Test("a partitioner of one's own that splits two axes is refused as TensorFlow refuses it")
    func twoAxesRefused() {
        let g = Graph()
        let bad = Partitioner { shape, _ in shape.map { _ in 2 } }
        #expect(throws: VariableScopeError.invalidPartitions(name: "w", shape: [4, 4], partitions: [2, 2])) {
            try g.getVariable("w", shape: [4, 4], partitioner: bad)
        }
        #expect(
            "\(VariableScopeError.invalidPartitions(name: "w", shape: [4, 4], partitions: [2, 2]))"
                == "Can only slice a variable along one dimension: variable w, shape: (4, 4), partitioning: [2, 2].")
    }

    @Test("hostile sizes do not trap: huge shapes and byte counts clamp as TensorFlow's float arithmetic does")
    func hugeNumbers() throws {
        let big = Int.max / 2
        #expect(
            try Partitioner.minMax(maxPartitions: Int.max, minSliceBytes: 1).partitions([big, big, big], 8) == [
                big, 1, 1,
            ])
        #expect(try Partitioner.minMax(maxPartitions: 3, minSliceBytes: Int.max).partitions([big, 2], 8) == [3, 1])
        #expect(try Partitioner.minMax(maxPartitions: 3, minSliceBytes: Int.max).partitions([2, 2], 8) == [1, 1])
        #expect(try Partitioner.variableAxisSize(maxShardBytes: 1).partitions([Int.max, Int.max], 8) == [Int.max, 1])
        // Python: float(2**63 - 1) / 2**63 is 1.0, so one part.
        #expect(try Partitioner.variableAxisSize(maxShardBytes: Int.max).partitions([Int.max, 1], 1) == [1, 1])
        #expect(try Partitioner.fixedSize(Int.max).partitions([Int.max], 4) == [Int.max])
        #expect(throws: PartitionError.self) { try Partitioner.variableAxisSize(maxShardBytes: 0).partitions([4], 4) }
        #expect(throws: PartitionError.self) { try Partitioner.minMax(minSliceBytes: 0).partitions([4], 4) }
        #expect(throws: PartitionError.axisOutOfRange(axis: Int.min, shape: [4])) {
            try Partitioner.fixedSize(2, axis: Int.min).partitions([4], 4)
        }
        // Python's indexing: -1 is the last axis.
        #expect(try Partitioner.fixedSize(2, axis: -1).partitions([3, 4], 4) == [1, 2])
    }
}
