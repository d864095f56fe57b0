import ArgumentParser
import BLAS
import Datasets
import Foundation
import Model
import Optimizers
import VariableScopes

/// `bench`: single-process training throughput at the anchor's benchmark configuration
/// (`anchors/tf_bench.py single`: batch 32, window 24, horizon 12, hidden 64, hidden2 64, Adam 1e-3,
/// one thread), with the time split into forward, backward and optimizer.
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

    func run() throws {
        BLAS.setThreadCount(threads)
        let config = ModelConfig(
            batch: batch, window: window, horizon: horizon, inputDim: 1, hidden: hidden, hidden2: hidden2)
        let model = try Seq2Seq(config, graph: Graph(seed: 0))
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 100_000)
        let data = try Dataset(series, window: window, horizon: horizon, scaling: .global, trainFraction: 0.99)
        let optimizer = OptimizerConfig(kind: .adam, learningRate: 1e-3)
        let variables = model.variables
        let slots = variables.map { OptimizerSlots(count: $0.count) }
        var rng = SplitMix64(seed: 1)
        var indices = [Int](repeating: 0, count: batch)
        var (forward, backward, update) = (0.0, 0.0, 0.0)
        var loss: Float = 0
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        for step in 0..<(warmup + steps) {
            for r in 0..<batch { indices[r] = Int(rng.next() % UInt64(data.train.count)) }
            data.train.fill(indices, x: model.x.value, y: model.y.value)
            let t0 = clock.now
            model.tape.forward()
            let t1 = clock.now
            model.tape.backward(from: model.loss)
            let t2 = clock.now
            for (v, s) in zip(variables, slots) {
                s.apply(optimizer, value: v.value, gradient: UnsafeBufferPointer(v.gradient))
            }
            let t3 = clock.now
            loss = model.loss.value[0]
            if step >= warmup {
                forward += seconds(t1 - t0)
                backward += seconds(t2 - t1)
                update += seconds(t3 - t2)
            }
        }
        let total = forward + backward + update
        print(
            String(
                format:
                    "{\"role\": \"single\", \"examples_per_s\": %.1f, \"step_ms\": %.3f, \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f, \"loss\": %.5f}",
                Double(steps * batch) / total, 1000 * total / Double(steps), 1000 * forward / Double(steps),
                1000 * backward / Double(steps), 1000 * update / Double(steps), loss))
    }
}

Bench.main()
