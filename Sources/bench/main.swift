import ArgumentParser
import BLAS
import Datasets
import Exchange
import Foundation
import Model
import Optimizers
import Training
import VariableScopes

/// `bench`: single-process training throughput at the anchor's benchmark configuration
/// (`anchors/tf_bench.py single`: batch 32, window 24, horizon 12, hidden 64, hidden2 64, Adam 1e-3,
/// one thread), with the time split into forward, backward and optimizer. It runs the trainer's own step.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure training throughput in one process.")

    @Option(help: "Timed steps.") var steps = 200
    @Option(help: "Untimed warm-up steps.") var warmup = 20
    @Option var batch = 32
    @Option var window = 24
    @Option var horizon = 12
    @Option var hidden = 64
    @Option var hidden2 = 64
    @Option(help: "OpenBLAS threads.") var threads = 1

    func validate() throws {
        for (flag, v, hi) in [
            ("--steps", steps, 10_000_000), ("--warmup", warmup, 1_000_000), ("--batch", batch, 4096),
            ("--window", window, 4096), ("--horizon", horizon, 4096), ("--hidden", hidden, 4096),
            ("--hidden2", hidden2, 4096), ("--threads", threads, 256),
        ] where !(1...hi).contains(v) && !(flag == "--warmup" && v == 0) {
            throw ValidationError("\(flag) must be in 1...\(hi), got \(v)")
        }
    }

    func run() throws {
        BLAS.setThreadCount(threads)
        let config = ModelConfig(
            batch: batch, window: window, horizon: horizon, inputDim: 1, hidden: hidden, hidden2: hidden2)
        let model = try Seq2Seq(config, graph: Graph(seed: 0))
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 100_000)
        let data = try Dataset(series, window: window, horizon: horizon, scaling: .global, trainFraction: 0.99)
        let exchange = LocalExchange(optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-3))
        let trainer = try Trainer(
            model: model, dataset: data, options: TrainingOptions(steps: warmup + steps), exchange: exchange,
            output: { _ in })
        _ = try exchange.start(variables: model.variables)
        var rng = SplitMix64(seed: 1)
        var indices = [Int](repeating: 0, count: batch)
        var warm = StepTimes()
        var times = StepTimes()
        var loss: Float = 0
        var cpuStart = timespec()
        for step in 1...(warmup + steps) {
            if step == warmup + 1 { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpuStart) }
            for r in 0..<batch { indices[r] = Int(rng.next() % UInt64(data.train.count)) }
            if step <= warmup {
                loss = try trainer.step(step, batch: indices, times: &warm)
            } else {
                loss = try trainer.step(step, batch: indices, times: &times)
            }
        }
        var cpuEnd = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpuEnd)
        // CPU seconds of the whole process over the timed steps (batch sampling included): on a shared
        // machine this moves far less than wall time, which also counts time spent waiting for a core.
        let cpu = Double(cpuEnd.tv_sec - cpuStart.tv_sec) + Double(cpuEnd.tv_nsec - cpuStart.tv_nsec) / 1e9
        let total = times.forward + times.backward + times.exchange
        print(
            String(
                format:
                    "{\"role\": \"single\", \"examples_per_s\": %.1f, \"step_ms\": %.3f, \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f, \"cpu_examples_per_s\": %.1f, \"loss\": %.5f}",
                Double(steps * batch) / total, 1000 * total / Double(steps), 1000 * times.forward / Double(steps),
                1000 * times.backward / Double(steps), 1000 * times.exchange / Double(steps),
                Double(steps * batch) / cpu, loss))
    }
}

Bench.main()
