import Datasets
import Foundation
import SafeTensors
import Testing
import Training

@testable import WorkerJob

@Suite("Worker job")
struct WorkerJobTests {
    @Test("the scaling as servers record it: relative, global, the seasonal ones with their period")
    func labels() {
        #expect(scalingLabel(.fixed(.seasonal, season: 52)) == "seasonal:52")
        #expect(scalingLabel(.fixed(.seasonalDifference, season: 4)) == "seasonal-difference:4")
        #expect(parseScaling("seasonal-difference:4").map { "\($0.0.rawValue) \($0.1 ?? 0)" } == "seasonal-difference 4")
        #expect(scalingLabel(.fixed(.global, season: 52)) == "global")
        #expect(parseScaling("seasonal:52").map { "\($0.0.rawValue) \($0.1 ?? 0)" } == "seasonal 52")
        #expect(parseScaling("relative").map { $0.0 } == .relative)
        #expect(parseScaling("sideways") == nil)
    }

    func job(restore: String?, scaling: ScalingRequest = .auto) -> WorkerJobConfig {
        WorkerJobConfig(
            model: ModelConfigOptions(batch: 4, window: 6, horizon: 3, hidden: 8, hidden2: 5), data: "synthetic",
            columns: [], scaling: scaling, season: nil, validationFraction: 0.1, servers: [],
            remote: .init(taskIndex: 0, numWorkers: 1, seed: 0), curveServerKeys: [], curveKeyPair: nil,
            restore: restore, save: nil, training: TrainingOptions(steps: 10), optimizer: .init(), threads: 1,
            denseForm: .getVariable)
    }

    @Test("restoring with --scaling auto takes the scaling the servers recorded, relative when none is")
    func restoredScaling() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("job-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let series = try BuiltinSeries.synthetic.load(seed: 0)
        #expect(try WorkerJob.chooseScaling(job(restore: dir), series: series).scaling == .relative)
        try SafeTensors.write(
            [("x", [1], [0])], to: dir + "/ps-0-00000001.safetensors",
            metadata: ["server": "ps-0", "sequence": "1", "scaling": "global"])
        let choice = try WorkerJob.chooseScaling(job(restore: dir), series: series)
        #expect(choice.scaling == .global && choice.reason.contains("recorded"))
        #expect(try WorkerJob.chooseScaling(job(restore: dir, scaling: .relative), series: series).scaling == .relative)
    }

    @Test("--scaling ensemble refuses a cluster, a model file and a restore, each by name, with the usage exit")
    func ensembleInProcessOnly() throws {
        let series = try BuiltinSeries.synthetic.load(seed: 0, length: 400)
        var cluster = job(restore: nil, scaling: .ensemble)
        cluster.servers = ["127.0.0.1:1"]
        var save = job(restore: nil, scaling: .ensemble)
        save.save = "/tmp/never-written.safetensors"
        for (config, flag) in [(cluster, "--ps"), (save, "--save"), (job(restore: "/tmp", scaling: .ensemble), "--restore")] {
            do {
                _ = try EnsembleJob.run(config, series: series, logger: .init(label: "test"))
                Issue.record("\(flag) was accepted")
            } catch let e as EnsembleJobError {
                #expect(e.description.contains(flag))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written.safetensors"))
    }
}
