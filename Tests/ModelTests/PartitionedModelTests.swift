import Autodiff
import Testing
import VariableScopes

@testable import Model

@Suite("The model under a partitioner: whole tensors forward and backward, parts trained")
struct PartitionedModelTests {
    static let config = ModelConfig(batch: 2, window: 4, horizon: 3, inputDim: 2, hidden: 6, hidden2: 5)

    func feed(_ m: Seq2Seq) {
        m.x.feed((0..<m.x.value.count).map { Float(($0 * 7) % 11) / 11 - 0.4 })
        m.y.feed((0..<m.y.value.count).map { Float(($0 * 5) % 7) / 7 - 0.3 })
    }

    @Test(
        "loss and every gradient equal the unpartitioned model's with the same values; every timestep's gradient lands in the parts",
        arguments: ["3 along rows", "2 along columns", "1"])
    func sameNumbers(_ label: String) throws {
        let partitioner: Partitioner
        switch label {
        case "3 along rows": partitioner = .fixedSize(3)
        // TensorFlow's fixed-size partitioner refuses axis 1 on the rank-1 biases: columns where there are any.
        case "2 along columns": partitioner = Partitioner { shape, _ in shape.count == 2 ? [1, min(2, shape[1])] : [1] }
        default: partitioner = .fixedSize(1)
        }
        let plain = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        let parted = try Seq2Seq(Self.config, graph: Graph(seed: 1), partitioner: partitioner)
        // Every trained variable is a part named <name>/part_<i>.
        #expect(parted.variables.allSatisfy { $0.name.contains("/part_") })
        for v in plain.variables {
            let whole = try #require(parted.graph.storedVariable(v.name))
            #expect(whole.isPartitioned && whole.shape == v.shape)
            whole.assign(Array(v.value))
        }
        feed(plain)
        feed(parted)
        let a = plain.forwardBackward()
        let b = parted.forwardBackward()
        #expect(a == b)
        for v in plain.variables {
            let whole = parted.graph.storedVariable(v.name)!
            #expect(Array(whole.gradient) == Array(v.gradient), "\(v.name)")
            // The parts' gradients, put back in place, are the whole's.
            var joined = [Float](repeating: .nan, count: v.count)
            let a = whole.partitionAxis
            let inner = v.shape.suffix(from: min(v.shape.count, a + 1)).reduce(1, *)
            let outer = v.shape.prefix(a).reduce(1, *)
            for part in whole.parts {
                let width = part.shape[whole.partitionAxis] * inner
                let start = part.sliceInfo!.offset[whole.partitionAxis] * inner
                for i in 0..<outer {
                    for k in 0..<width { joined[i * v.shape[whole.partitionAxis] * inner + start + k] = part.gradient[i * width + k] }
                }
                #expect(part.sliceInfo?.fullName == v.name)
            }
            #expect(joined == Array(v.gradient), "\(v.name)")
        }
    }

    @Test("axis-0 parts are views of the whole: a part's new value is the whole's at once, with no copy")
    func views() throws {
        let m = try Seq2Seq(Self.config, graph: Graph(seed: 1), partitioner: .fixedSize(2))
        let kernel = try #require(m.graph.storedVariable("lstm_cell_decoder/rnn/lstm_cell/kernel"))
        #expect(kernel.partsAreViews && kernel.parts.count == 2)
        let first = kernel.parts[0]
        first.assign([Float](repeating: 3, count: first.count))
        #expect(kernel.value[0] == 3 && kernel.value[first.count - 1] == 3)
        #expect(kernel.parts[1].value.baseAddress == kernel.value.baseAddress! + first.count)
    }
}
