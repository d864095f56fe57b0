import Datasets
import Exchange
import Foundation
import Model
import Optimizers
import SafeTensors
import Testing
import VariableScopes

@testable import Training

@Suite("Optimizers")
struct OptimizerTests {
    func step(_ c: OptimizerConfig, _ value: inout [Float], _ grads: [[Float]]) {
        let slots = OptimizerSlots(count: value.count)
        for g in grads {
            value.withUnsafeMutableBufferPointer { v in
                g.withUnsafeBufferPointer { slots.apply(c, value: v, gradient: $0) }
            }
        }
    }

    @Test("SGD, momentum and Adam follow TensorFlow's update rules")
    func rules() {
        var v: [Float] = [1, -2]
        step(.init(kind: .sgd, learningRate: 0.1), &v, [[1, 1], [2, -1]])
        #expect(v == [1 - 0.1 - 0.2, -2 - 0.1 + 0.1])

        v = [0]
        step(.init(kind: .momentum, learningRate: 0.1, momentum: 0.9), &v, [[1], [1]])
        // accum 1 then 1.9: var = -0.1 - 0.19
        #expect(abs(v[0] + 0.29) < 1e-6)

        v = [0]
        step(.init(kind: .adam, learningRate: 0.01), &v, [[2], [-1]])
        // By hand: t=1: m=.2 v=.004 lr_t=.01*sqrt(.001)/.1; t=2: m=.08 v=.004996 lr_t=.01*sqrt(1-.999^2)/(1-.81)
        let lr1 = 0.01 * (1 - 0.999).squareRoot() / (1 - 0.9)
        let x1 = -lr1 * 0.2 / (0.004.squareRoot() + 1e-8)
        let lr2 = 0.01 * (1 - 0.999 * 0.999).squareRoot() / (1 - 0.81)
        let x2 = x1 - lr2 * 0.08 / ((0.999 * 0.004 + 0.001).squareRoot() + 1e-8)
        #expect(abs(Double(v[0]) - x2) < 1e-6)
    }
}

@Suite("Training in one process")
struct TrainerTests {
    static let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)

    func run(steps: Int, seed: UInt64 = 1, logdir: String? = nil) throws -> (Trainer, TrainingReport, [String]) {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let dataset = try Dataset(series, window: Self.config.window, horizon: Self.config.horizon)
        let model = try Seq2Seq(Self.config, graph: Graph(seed: seed))
        var lines: [String] = []
        let trainer = try Trainer(
            model: model, dataset: dataset,
            options: TrainingOptions(steps: steps, seed: seed, logEvery: 50, logdir: logdir),
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)),
            output: { lines.append($0) })
        let report = try trainer.train()
        return (trainer, report, lines)
    }

    @Test("training lowers the held-out error below the untrained model's and reports progress")
    func learns() throws {
        let (untrained, _, _) = try run(steps: 0)
        let before = untrained.evaluate()
        let (trainer, report, lines) = try run(steps: 300)
        let after = trainer.evaluate()
        #expect(after.modelMSE < 0.8 * before.modelMSE)
        #expect(after.ratio < 1, "\(after)")
        #expect(report.examplesPerSecond > 0)
        #expect(lines.contains { $0.hasPrefix("step 300/300") && $0.contains("examples/s") && $0.contains("ETA") })
        #expect(after.naiveMSE == before.naiveMSE)
    }

    @Test("the same seed trains to bit-identical weights")
    func deterministic() throws {
        let (a, _, _) = try run(steps: 20)
        let (b, _, _) = try run(steps: 20)
        for (x, y) in zip(a.model.variables, b.model.variables) { #expect(Array(x.value) == Array(y.value)) }
    }

    @Test("--logdir writes a TensorBoard event file whose records check out")
    func events() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (trainer, _, _) = try run(steps: 100, logdir: dir)
        _ = trainer.evaluate()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.count == 1 && files[0].hasPrefix("events.out.tfevents."))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(files[0])")))
        var offset = 0
        var records = 0
        while offset < bytes.count {
            let lengthBytes = Array(bytes[offset..<(offset + 8)])
            let length = lengthBytes.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let crc = bytes[(offset + 8)..<(offset + 12)].enumerated().reduce(UInt32(0)) {
                $0 | UInt32($1.element) << (8 * $1.offset)
            }
            #expect(crc == CRC32C.masked(lengthBytes))
            let payload = Array(bytes[(offset + 12)..<(offset + 12 + length)])
            let dcrc = bytes[(offset + 12 + length)..<(offset + 16 + length)].enumerated().reduce(UInt32(0)) {
                $0 | UInt32($1.element) << (8 * $1.offset)
            }
            #expect(dcrc == CRC32C.masked(payload))
            offset += 16 + length
            records += 1
        }
        // Version record, loss and examples/s at steps 50 and 100, held-out MSE and ratio.
        #expect(records == 1 + 4 + 2)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("brain.Event:2") && text.contains("heldout_mse") && text.contains("loss"))
    }

    @Test("CRC-32C matches its published check value")
    func crc() { #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283) }

    @Test("--print-variables: the seed's print loop with the diagnostic")
    func report() throws {
        let m = try Seq2Seq(
            ModelConfig(batch: 1, window: 2, horizon: 2, inputDim: 1, hidden: 64, hidden2: 64), form: .variable)
        let text = VariableReport(m.graph).text
        let line = text.split(separator: "\n").first { $0.hasPrefix("lstm_cell_decoder_1/weights_tilde ") }
        #expect(
            line?.split(separator: " ", omittingEmptySubsequences: true) == [
                "lstm_cell_decoder_1/weights_tilde", "(128,", "64)", "32768",
            ])
        #expect(text.contains("10 variables, 10 trainable"))
        #expect(text.components(separatedBy: "warning:").count - 1 == 3)
    }
}

@Suite("Model files")
struct ModelFileTests {
    @Test("the model is saved with the training split's normaliser, readable back")
    func saveWithNormaliser() throws {
        let series = try BuiltinSeries.co2.load()
        let dataset = try Dataset(series, window: 6, horizon: 2)
        let model = try Seq2Seq(ModelConfig(batch: 2, window: 6, horizon: 2, inputDim: 1, hidden: 4, hidden2: 3))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "model-\(UUID().uuidString).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ModelFile.save(model, dataset: dataset, to: path)
        #expect(try ModelFile.normalizer(at: path) == dataset.normalizer)
        let tensors = try SafeTensors.read(path)
        #expect(tensors.keys.sorted() == model.variables.map(\.name).sorted())
        #expect(try SafeTensors.metadata(path)["scaling"] == "relative")
    }
}
