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
        // One process is deterministic; 0.8 asks for a clear improvement after 300 steps, not a figure.
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
        // Version record, loss and examples/s at steps 50 and 100, held-out MSE, ratios to naive and window mean.
        #expect(records == 1 + 4 + 3)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("brain.Event:2") && text.contains("heldout_mse") && text.contains("loss"))
        #expect(text.contains("heldout_ratio_to_naive") && text.contains("heldout_ratio_to_window_mean"))
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

    @Test("--print-variables prints every shape whole, however long (hidden 1024: (1025, 4096))")
    func reportLongShapes() throws {
        let m = try Seq2Seq(ModelConfig(batch: 1, window: 2, horizon: 2, inputDim: 1, hidden: 1024, hidden2: 1024))
        let text = VariableReport(m.graph).text
        #expect(text.contains("(1025, 4096)"), "\(text)")
        for line in text.split(separator: "\n") where line.contains("(") {
            #expect(line.filter { $0 == "(" }.count == line.filter { $0 == ")" }.count, "cut: \(line)")
        }
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

@Suite("Evaluation against baselines")
struct EvaluationTests {
    static let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)

    /// A model whose every variable is zero: its output is exactly 0, whatever the input.
    func zeroModel() throws -> Seq2Seq {
        let model = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        for v in model.variables { v.value.update(repeating: 0) }
        return model
    }

    @Test("a zero output is the naive forecast under relative scaling and the training mean under global")
    func zeroOutput() throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let model = try zeroModel()
        let relative = Evaluation.run(model, on: try Dataset(series, window: 8, horizon: 3, scaling: .relative))
        #expect(relative.modelMSE == relative.naiveMSE && relative.ratio == 1)
        let global = try Dataset(series, window: 8, horizon: 3, scaling: .global)
        let evaluation = Evaluation.run(model, on: global)
        // The training mean is 0 in normalised units: the model's MSE is the mean of the squared truths.
        let w = global.heldOut
        let byHand = (0..<w.count).flatMap { i in (1...3).map { w.truth(i, step: $0) * w.truth(i, step: $0) } }
        #expect(abs(evaluation.modelMSE - global.unnormalisedMSE(byHand.reduce(0, +) / Double(byHand.count))) < 1e-9)
    }

    @Test("every baseline's ratio is printed on its own line after the parsed held-out line")
    func lines() throws {
        let series = try BuiltinSeries.co2.load()
        let dataset = try Dataset(series, window: 8, horizon: 3, season: 52)
        let evaluation = Evaluation.run(try zeroModel(), on: dataset)
        let lines = "\(evaluation)".split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("held-out MSE ") && lines[0].contains(": ratio 1.000 over "))
        #expect(lines[1].hasPrefix("held-out vs seasonal-naive (period 52) forecast "))
        #expect(lines[2].hasPrefix("held-out vs window mean forecast "))
        #expect(evaluation.baselines.map(\.baseline) == [.seasonalNaive(period: 52), .windowMean])
        for b in evaluation.baselines {
            #expect(b.ratio == evaluation.modelMSE / b.mse)
            #expect(abs(b.mse - dataset.unnormalisedMSE(dataset.heldOut.meanSquaredError(of: b.baseline))) < 1e-12)
        }
    }
}

@Suite("Early stopping")
struct EarlyStoppingTests {
    @Test("patience ends the run after that many steps without a better validation MSE and keeps the best variables")
    func stops() throws {
        let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let dataset = try Dataset(series, window: 8, horizon: 3)
        let model = try Seq2Seq(config, graph: Graph(seed: 1))
        let trainer = try Trainer(
            model: model, dataset: dataset,
            options: TrainingOptions(steps: 2000, seed: 1, logEvery: 1000, patience: 20, validateEvery: 10),
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.05)), output: { _ in })
        let report = try trainer.train()
        let best = try #require(report.bestStep)
        #expect(report.stoppedEarly && report.steps < 2000)
        #expect(report.steps - best >= 20 && report.steps - best < 30)
        #expect(Evaluation.run(model, on: dataset, split: .validation).modelMSE == report.bestValidationMSE)
    }

    @Test("without patience every step is trained, as before")
    func off() throws {
        let (_, report, _) = try TrainerTests().run(steps: 30)
        #expect(report.steps == 30 && !report.stoppedEarly && report.bestStep == nil)
    }
}

@Suite("Choosing the scaling")
struct ScalingChoiceTests {
    static let config = ModelConfig(batch: 8, window: 6, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)

    /// Deterministic Gaussian-ish noise (sum of three uniforms).
    static func noise(_ n: Int, seed: UInt64) -> [Double] {
        var s = seed &+ 0x2545_F491_4F6C_DD1D
        func u() -> Double {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(s >> 11) / Double(1 << 53)
        }
        return (0..<n).map { _ in u() + u() + u() - 1.5 }
    }

    /// A steady climb with noise: later values lie above everything the training part saw.
    static let trend = Series(
        name: "trend", columns: ["v"], values: noise(600, seed: 1).enumerated().map { [0.02 * Double($0) + 0.3 * $1] })
    /// Noise around a constant: the level is what to forecast, and the last value is a poor guide to it.
    static let stationary = Series(
        name: "stationary", columns: ["v"], values: noise(600, seed: 2).map { [5 + $0] })

    func choose(_ series: Series, seed: UInt64 = 0, steps: Int = 600) throws -> ScalingChoice {
        try ModelSelection.chooseScaling(
            for: series, config: Self.config,
            options: SelectionOptions(
                steps: steps, seed: seed, optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01)),
            output: { _ in })
    }

    @Test("a series with a strong trend picks relative", arguments: [0, 1, 2] as [UInt64])
    func trendPicksRelative(seed: UInt64) throws {
        let choice = try choose(Self.trend, seed: seed)
        #expect(choice.scaling == .relative, "\(choice)")
        #expect(choice.season == nil && choice.trials.map(\.scaling) == [.relative, .global])
    }

    @Test("on a stationary series global ranks lowest on the folds, and the choice follows the tie rule", arguments: [0, 1, 2] as [UInt64])
    func stationaryRanksGlobal(seed: UInt64) throws {
        let choice = try choose(Self.stationary, seed: seed)
        let relative = try #require(choice.trials.first { $0.scaling == .relative })
        let global = try #require(choice.trials.first { $0.scaling == .global })
        #expect(global.mean < relative.mean, "\(choice)")
        // Relative (naive-like) is the simplest: global must beat it by more than the fold spread.
        let d = TieRule.decide(choice.trials)
        #expect(choice.scaling == (d.margin > d.spread && d.everyFold ? .global : .relative), "\(choice)")
    }

    @Test("the choice and its validation figures are the same for the same seed")
    func deterministic() throws {
        let a = try choose(Self.stationary, seed: 3)
        let b = try choose(Self.stationary, seed: 3)
        #expect(a == b)
        #expect(a.trials.allSatisfy { $0.mean.isFinite && $0.mean > 0 && $0.foldRatios.count == 3 })
    }

    @Test("the trials share 30% of the steps in two rungs, and the one line gives every fold score and the cost")
    func budget() throws {
        let choice = try choose(Self.trend)
        // Two candidates both reach the second rung: 2 x 45 then 2 x 45 more.
        #expect(choice.trials.map(\.steps) == [90, 90] && choice.budget == 180)
        #expect(!choice.reason.contains("\n"))
        #expect(choice.reason.hasPrefix("scaling auto: chose relative, lowest mean over folds; "))
        #expect(choice.reason.contains("MSE/naive on 3 rolling-origin folds: relative "))
        for trial in choice.trials {
            let folds = trial.foldRatios.map { String(format: "%.3f", $0) }.joined(separator: "/")
            #expect(choice.reason.contains("\(trial.scaling.rawValue) \(folds)"))
        }
        #expect(choice.reason.contains("halving 2x45 then 2x90 steps (180, 30% of --steps 600)"))
    }

    @Test("with four candidates (a season) the worst two are dropped after the first rung and say so")
    func halvingDrops() throws {
        let e = Self.noise(600, seed: 4)
        let values = (0..<600).map { t -> [Double] in
            let x = Double(t)
            return [0.01 * x + sin(2 * Double.pi * x / 12) + 0.2 * e[t]]
        }
        let choice = try choose(Series(name: "cycle", columns: ["v"], values: values))
        #expect(choice.trials.count == 4)
        // 180 trial steps: 4 x 30, then the best 2 on to 60.
        let dropped = choice.trials.filter { $0.steps == 30 }
        #expect(dropped.count == 2 && choice.trials.filter { $0.steps == 60 }.count == 2)
        for d in dropped {
            #expect(choice.reason.contains("\(d.scaling.rawValue) ") && choice.reason.contains("(dropped at 30)"))
            #expect(choice.scaling != d.scaling)
        }
    }

    @Test("a detected season adds the two seasonal scalings to the candidates, and the data set for the choice carries it")
    func seasonalCandidate() throws {
        let e = Self.noise(600, seed: 4)
        let values = (0..<600).map { t -> [Double] in
            let x = Double(t)
            return [0.01 * x + sin(2 * Double.pi * x / 12) + 0.2 * e[t]]
        }
        let series = Series(name: "cycle", columns: ["v"], values: values)
        let choice = try choose(series)
        let tried: [Scaling] = choice.trials.map { $0.scaling }
        #expect(choice.season == 12 && tried == [.seasonalDifference, .relative, .global, .seasonal])
        let dataset = try choice.dataset(series, window: 6, horizon: 3)
        #expect(dataset.scaling == choice.scaling && dataset.season == 12)
    }

    @Test("with no steps to spend, auto keeps relative and says why")
    func noBudget() throws {
        let choice = try ModelSelection.chooseScaling(
            for: Self.trend, config: Self.config, options: SelectionOptions(steps: 0), output: { _ in })
        #expect(choice.scaling == .relative && choice.trials.isEmpty && choice.reason.contains("no steps"))
    }
}

@Suite("Rolling-origin folds")
struct RollingOriginTests {
    @Test("folds are contiguous, cover every window once, earliest first, the later ones taking the remainder")
    func cover() {
        let folds = RollingOrigin.folds(count: 10, folds: 3)
        #expect(folds == [0..<3, 3..<6, 6..<10])
        #expect(RollingOrigin.folds(count: 9, folds: 3) == [0..<3, 3..<6, 6..<9])
        #expect(RollingOrigin.folds(count: 2, folds: 3) == [0..<1, 1..<2])
        #expect(RollingOrigin.folds(count: 0, folds: 3).isEmpty)
    }

    @Test("a fold's ratio is its model MSE over its naive MSE, not the mean of per-window ratios")
    func ratios() {
        let ratios = RollingOrigin.foldRatios(
            model: [1, 3, 2, 2], naive: [2, 2, 1, 3], folds: [0..<2, 2..<4])
        #expect(ratios == [1.0, 1.0])
        #expect(RollingOrigin.foldRatios(model: [0], naive: [0], folds: [0..<1]) == [1])
    }

    @Test("the folds' windows are the ones the trials never train on: after the training windows, before held-out")
    func foldsAfterTraining() throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let d = try Dataset(series, window: 8, horizon: 3, trainFraction: 0.8, validationFraction: 0.2)
        let lastTrainedTarget = try #require(d.train.origins.last) + 3
        let firstFoldTarget = try #require(d.validation.origins.first) + 1
        let lastFoldTarget = try #require(d.validation.origins.last) + 3
        let firstHeldOutTarget = try #require(d.heldOut.origins.first) + 1
        #expect(firstFoldTarget > lastTrainedTarget && lastFoldTarget < firstHeldOutTarget)
    }
}

@Suite("Successive halving")
struct HalvingPlanTests {
    @Test("three candidates: all train t steps, two train on to 2t, and 5t is the budget", arguments: [100, 900, 1000])
    func three(budget: Int) {
        let plan = HalvingPlan(budget: budget, candidates: 3)
        let t = budget / 5
        #expect(plan.rungs == [.init(steps: t, candidates: 3), .init(steps: 2 * t, candidates: 2)])
        #expect(plan.total == 5 * t && plan.total <= budget)
    }

    @Test("two candidates both reach the second rung, so the last rank is still a comparison")
    func two() {
        let plan = HalvingPlan(budget: 180, candidates: 2)
        #expect(plan.rungs == [.init(steps: 45, candidates: 2), .init(steps: 90, candidates: 2)])
        #expect(HalvingPlan.survivors(of: 5) == 3 && HalvingPlan.survivors(of: 4) == 2)
    }

    @Test("a budget too small for one step per candidate plans nothing")
    func empty() {
        #expect(HalvingPlan(budget: 3, candidates: 3).rungs.isEmpty)
        #expect(HalvingPlan(budget: 0, candidates: 2).total == 0)
    }
}

@Suite("Tie rule")
struct TieRuleTests {
    func score(_ s: Scaling, _ r: [Double]) -> CandidateScore { CandidateScore(scaling: s, steps: 1, foldRatios: r) }

    @Test("a lower mean within the fold-to-fold spread keeps the simplest candidate")
    func withinSpread() {
        // seasonal is lower by 0.02 on average, but its advantage swings from -0.10 to +0.12 across folds.
        let d = TieRule.decide([score(.relative, [0.30, 0.30, 0.30]), score(.seasonal, [0.40, 0.18, 0.26])])
        #expect(d.chosen == .relative && d.lowest == .seasonal)
        let logs = [log(0.30 / 0.40), log(0.30 / 0.18), log(0.30 / 0.26)]
        #expect(abs(d.margin - logs.reduce(0, +) / 3) < 1e-12 && d.spread > d.margin)
    }

    @Test("a win by more than the spread goes to the more complex candidate")
    func clearWin() {
        let d = TieRule.decide([score(.global, [0.5, 0.6, 0.55]), score(.relative, [0.9, 1.0, 0.95])])
        #expect(d.chosen == .global && d.simplest == .relative)
        #expect(d.margin > 0.5 && d.spread < 0.05)
    }

    @Test("a win by more than the spread that loses one fold keeps the simplest (the panel's melsyd, seed 2)")
    func losesAFold() throws {
        let d = TieRule.decide([score(.relative, [1.010, 3.100, 1.639]), score(.global, [0.632, 1.418, 1.642])])
        #expect(d.lowest == .global && d.margin > d.spread && !d.everyFold)
        #expect(d.chosen == .relative)
        let line = ModelSelection.explain(
            d, scores: [score(.relative, [1.010, 3.100, 1.639]), score(.global, [0.632, 1.418, 1.642])], dropped: [],
            plan: HalvingPlan(budget: 90, candidates: 2), steps: 300, season: nil)
        #expect(line.hasPrefix("scaling auto: chose relative, the simplest: global is lower by log 0.416 on average, more than the fold spread 0.395, but not on every fold;"))
    }

    @Test("a simplest candidate that diverged loses to the lowest, and the line says it diverged")
    func divergedLine() {
        let scores = [score(.relative, [0.5, .nan, 0.4]), score(.global, [0.6, 0.7, 0.8])]
        let d = TieRule.decide(scores)
        #expect(d.chosen == .global && d.simplest == .relative)
        let line = ModelSelection.explain(
            d, scores: scores, dropped: [], plan: HalvingPlan(budget: 90, candidates: 2), steps: 300, season: nil)
        #expect(line.hasPrefix("scaling auto: chose global, the simpler relative diverged"))
    }

    @Test("a win on every fold counts even when one fold's gap is much larger than the others' (issue 20's h02)")
    func consistentWin() {
        let d = TieRule.decide([
            score(.relative, [0.130, 0.075, 0.116]), score(.seasonal, [0.102, 0.041, 0.042]),
        ])
        #expect(d.chosen == .seasonal && d.simplest == .relative)
    }

    @Test(
        "simplicity runs seasonal-difference (zero output is seasonal-naive), relative (naive), global, seasonal, whatever order the scores come in"
    )
    func order() {
        let tie = [0.5, 0.5, 0.5]
        let all = TieRule.decide([score(.seasonal, tie), score(.global, tie), score(.relative, tie), score(.seasonalDifference, tie)])
        #expect(all.chosen == .seasonalDifference && all.simplest == .seasonalDifference)
        let d = TieRule.decide([score(.seasonal, [0.5, 0.5, 0.5]), score(.global, [0.5, 0.5, 0.5])])
        #expect(d.chosen == .global && d.simplest == .global && d.margin == 0)
        #expect(TieRule.decide([score(.global, [0.5, 0.5, 0.5]), score(.relative, [0.5, 0.5, 0.5])]).chosen == .relative)
    }

    @Test("gold, seed 0 of the panel: global's lower mean swings across folds, so relative (naive-like) is kept")
    func gold() {
        let d = TieRule.decide([score(.relative, [0.916, 1.009, 0.901]), score(.global, [2.141, 0.528, 2.853])])
        #expect(d.chosen == .relative)
        let melsyd = TieRule.decide([score(.relative, [0.600, 3.770, 1.171]), score(.global, [1.579, 1.611, 1.273])])
        #expect(melsyd.chosen == .relative && melsyd.lowest == .global)
    }

    @Test("a simplest candidate that diverged loses to any finite score")
    func diverged() {
        let d = TieRule.decide([score(.relative, [.infinity, 1, 1]), score(.global, [0.9, 2, 0.1])])
        #expect(d.chosen == .global)
    }
}

@Suite("Early stopping rules")
struct EarlyStoppingRuleTests {
    @Test("patience is a quarter of the run and the minimum half of it", arguments: [1000, 3000, 100_000])
    func proportional(steps: Int) {
        #expect(EarlyStoppingDefaults.patience(steps: steps) == steps / 4)
        #expect(EarlyStoppingDefaults.minSteps(steps: steps) == steps / 2)
        #expect(EarlyStoppingDefaults.patience(steps: 40, validateEvery: 100) == 100)
    }

    func trainer(_ options: TrainingOptions) throws -> (Trainer, Dataset, Seq2Seq) {
        let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)
        let dataset = try Dataset(try BuiltinSeries.synthetic.load(seed: 0, length: 600), window: 8, horizon: 3)
        let model = try Seq2Seq(config, graph: Graph(seed: 1))
        let trainer = try Trainer(
            model: model, dataset: dataset, options: options,
            exchange: LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 0.05)), output: { _ in })
        return (trainer, dataset, model)
    }

    @Test("no stop before the minimum step, even when patience ran out long before it")
    func minimum() throws {
        #expect(!Trainer.stopsEarly(step: 200, bestStep: 10, patience: 20, minSteps: 300))
        #expect(Trainer.stopsEarly(step: 300, bestStep: 10, patience: 20, minSteps: 300))
        #expect(!Trainer.stopsEarly(step: 300, bestStep: 290, patience: 20, minSteps: 300))
        let (t, _, _) = try trainer(
            TrainingOptions(steps: 400, seed: 1, logEvery: 1000, patience: 20, validateEvery: 10, minSteps: 300))
        #expect(try t.train().steps >= 300)
    }

    @Test("with a moving average, the kept variables are the average judged best, not the raw weights")
    func average() throws {
        let (t, dataset, model) = try trainer(
            TrainingOptions(steps: 60, seed: 1, logEvery: 1000, patience: 1000, validateEvery: 10, averageDecay: 0.9))
        let report = try t.train()
        let kept = try #require(report.bestValidationMSE)
        #expect(Evaluation.run(model, on: dataset, split: .validation).modelMSE == kept)
        // The raw weights of the same run (no average) end elsewhere.
        let (u, _, raw) = try trainer(TrainingOptions(steps: 60, seed: 1, logEvery: 1000, patience: 1000, validateEvery: 10))
        _ = try u.train()
        #expect(zip(model.variables, raw.variables).contains { Array($0.value) != Array($1.value) })
    }
}

@Suite("Ensemble")
struct EnsembleTests {
    static let config = ModelConfig(batch: 8, window: 8, horizon: 3, inputDim: 1, hidden: 8, hidden2: 6)

    @Test("an ensemble of one is that model's own evaluation")
    func one() throws {
        let dataset = try Dataset(try BuiltinSeries.synthetic.load(seed: 0, length: 600), window: 8, horizon: 3)
        let model = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        let alone = Evaluation.run(model, on: dataset)
        let ensemble = try Evaluation.run([EnsembleMember(model: model, dataset: dataset)])
        #expect(abs(ensemble.modelMSE - alone.modelMSE) < 1e-9 * alone.modelMSE && ensemble.naiveMSE == alone.naiveMSE)
    }

    @Test("two members average their forecasts in series units: zero models under relative and global give the mean of naive and the training mean")
    func average() throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 600)
        let relative = try Dataset(series, window: 8, horizon: 3, scaling: .relative)
        let global = try Dataset(series, window: 8, horizon: 3, scaling: .global)
        let zero = try Seq2Seq(Self.config, graph: Graph(seed: 1))
        for v in zero.variables { v.value.update(repeating: 0) }
        let e = try Evaluation.run([EnsembleMember(model: zero, dataset: relative), EnsembleMember(model: zero, dataset: global)])
        let w = relative.heldOut
        var sum = 0.0
        for i in 0..<w.count {
            for k in 1...3 {
                let err = (w.history[w.origins[i]] + 0) / 2 - w.truth(i, step: k)
                sum += err * err
            }
        }
        #expect(abs(e.modelMSE - relative.unnormalisedMSE(sum / Double(w.count * 3))) < 1e-9)
    }

    @Test("the ranking puts the finalists first, lowest mean first, and the dropped candidate last")
    func ranked() {
        let choice = ScalingChoice(
            scaling: .global, season: 12,
            trials: [
                CandidateScore(scaling: .relative, steps: 10, foldRatios: [0.1, 0.1, 0.1]),
                CandidateScore(scaling: .global, steps: 20, foldRatios: [0.5, 0.5, 0.5]),
                CandidateScore(scaling: .seasonal, steps: 20, foldRatios: [0.3, 0.3, 0.3]),
            ], budget: 50, reason: "")
        #expect(choice.ranked == [.seasonal, .global, .relative])
    }
}
