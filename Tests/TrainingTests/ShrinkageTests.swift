import Datasets
import Exchange
import Foundation
import Model
import Optimizers
import Testing
import VariableScopes

@testable import Training

@Suite("Shrinkage toward the baseline")
struct ShrinkageTests {
    static let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)

    @Test("α is the least-squares weight Σp·y/Σp², clamped to [0, 1]; 1 when the model outputs nothing")
    func alpha() {
        #expect(Shrinkage.alpha(outputs: [1, 2], targets: [0.5, 1]) == 0.5)
        #expect(Shrinkage.alpha(outputs: [1, 2], targets: [-1, -2]) == 0)
        #expect(Shrinkage.alpha(outputs: [1, 2], targets: [3, 6]) == 1)
        #expect(Shrinkage.alpha(outputs: [0, 0], targets: [3, 6]) == 1)
        #expect(Shrinkage.alpha(outputs: [.nan, 1], targets: [1, 1]) == 1)
        #expect(Shrinkage.alpha(outputs: [.infinity], targets: [1]) == 1)
    }

    @Test("the output variables: one weights_target shared by every step, one per step under tf.Variable, or its parts")
    func outputVariables() throws {
        let shared = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        #expect(Shrinkage.outputVariables(shared).map(\.name) == ["lstm_cell_decoder/weights_target"])
        let perStep = try Seq2Seq(Self.config, graph: Graph(seed: 1), form: .variable)
        #expect(Shrinkage.outputVariables(perStep).count == Self.config.horizon)
        let parted = try Seq2Seq(Self.config, graph: Graph(seed: 1), partitioner: .fixedSize(2))
        let parts = Shrinkage.outputVariables(parted)
        #expect(parts.count == 2 && parts.allSatisfy { $0.name.hasPrefix("lstm_cell_decoder/weights_target/part_") })
    }

    @Test(
        "applied, every prediction is exactly α times the model's, and the validation MSE is no higher than before",
        arguments: [Scaling.relative, .seasonalDifference])
    func apply(_ scaling: Scaling) throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let dataset = try Dataset(series, window: 8, horizon: 3, scaling: scaling, season: scaling.needsSeason ? 12 : nil)
        let model = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        // A briefly trained model: its correction is partly right, so α lands inside (0, 1) or at a bound.
        let trainer = try Trainer(
            model: model, dataset: dataset, options: TrainingOptions(steps: 40, seed: 1, logEvery: 40),
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)), output: { _ in })
        _ = try trainer.train()
        let w = dataset.validation
        w.fill(0..<min(8, w.count), x: model.x.value, y: model.y.value)
        model.forward()
        let before = Array(model.predictions.value)
        let fit = try #require(Shrinkage.apply(to: model, dataset: dataset))
        #expect((0...1).contains(fit.alpha) && fit.windows == w.count)
        #expect(fit.after <= fit.before * (1 + 1e-6))
        w.fill(0..<min(8, w.count), x: model.x.value, y: model.y.value)
        model.forward()
        for (a, b) in zip(model.predictions.value, before) {
            #expect(abs(Double(a) - fit.alpha * Double(b)) <= 1e-6 * max(1, abs(Double(b))))
        }
    }

    @Test("with noise to forecast the correction is shrunk to nothing, and the forecast is the baseline's")
    func noise() throws {
        // A random walk: the naive forecast is the best there is, and what a model adds is noise.
        var x = 0.0
        var s: UInt64 = 7
        let values = (0..<800).map { _ -> [Double] in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            x += Double(s >> 11) / Double(1 << 53) - 0.5
            return [x]
        }
        let dataset = try Dataset(Series(name: "walk", columns: ["v"], values: values), window: 8, horizon: 3)
        let model = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        // Untrained: its output is an arbitrary function of the window, unrelated to the next steps.
        for v in Shrinkage.outputVariables(model) { v.assign(v.value.map { $0 * 50 }) }
        let fit = try #require(Shrinkage.apply(to: model, dataset: dataset))
        #expect(fit.alpha < 0.2 && fit.after < fit.before)
        let naive = dataset.unnormalisedMSE(dataset.validation.meanSquaredError(of: .naive))
        #expect(fit.after <= naive * 1.05)
    }

    @Test("early stopping with shrink reports α in its line; without patience nothing is shrunk")
    func inTrainer() throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let dataset = try Dataset(series, window: 8, horizon: 3)
        let model = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        let trainer = try Trainer(
            model: model, dataset: dataset,
            options: TrainingOptions(steps: 60, seed: 1, logEvery: 60, patience: 20, validateEvery: 10, shrink: true),
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)), output: { _ in })
        let report = try trainer.train()
        let fit = try #require(report.shrinkage)
        #expect(report.earlyStoppingSummary?.contains(String(format: "weighted by α = %.3f", fit.alpha)) == true)
        #expect(abs(Evaluation.run(model, on: dataset, split: .validation).modelMSE - fit.after) <= 1e-9 * fit.after)
        let plain = try Trainer(
            model: try Seq2Seq(Self.config, graph: Graph(seed: 1)), dataset: dataset,
            options: TrainingOptions(steps: 20, seed: 1, logEvery: 20, shrink: true),
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)), output: { _ in })
        #expect(try plain.train().shrinkage == nil)
    }
}
