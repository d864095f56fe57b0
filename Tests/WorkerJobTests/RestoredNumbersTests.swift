import Datasets
import Foundation
import SafeTensors
import Testing
import Training
import WorkerRuntime

@testable import WorkerJob

/// Numbers a worker reads from a checkpoint's metadata are checked like any other input.
@Suite("Restored scaling")
struct RestoredNumbersTests {
    @Test("a recorded season outside 1...100000 (or not a number) is refused; 0 is the label's 'none'")
    func seasonBounds() {
        for bad in [
            "seasonal:-1", "seasonal:100001", "seasonal:9223372036854775807", "seasonal:x", "seasonal:1:2", "seasonal:",
        ] {
            #expect(parseScaling(bad) == nil, "\(bad)")
        }
        #expect(parseScaling("seasonal:0").map { $0.1 == nil } == true)
        #expect(parseScaling("seasonal:100000").map { $0.1 } == 100_000)
    }

    @Test(
        "restoring with --scaling auto from a checkpoint whose season is out of range is a data error naming the file")
    func damagedScaling() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("job-season-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/ps-0-00000001.safetensors"
        try SafeTensors.write(
            [("x", [1], [0])], to: file,
            metadata: ["server": "ps-0", "sequence": "1", "scaling": "seasonal:4611686018427387904"])
        let series = try BuiltinSeries.synthetic.load(seed: 0)
        let job = WorkerJobConfig(
            model: ModelConfigOptions(batch: 4, window: 6, horizon: 3, hidden: 8, hidden2: 5), data: "synthetic",
            columns: [], scaling: .auto, season: nil, validationFraction: 0.1, servers: [],
            remote: .init(taskIndex: 0, numWorkers: 1, seed: 0), curveServerKeys: [], curveKeyPair: nil,
            restore: dir, save: nil, training: TrainingOptions(steps: 10), optimizer: .init(), threads: 1,
            denseForm: .getVariable)
        do {
            _ = try WorkerJob.chooseScaling(job, series: series)
            Issue.record("a season of 2^62 was taken")
        } catch let e as Checkpoints.Error {
            #expect(!e.isMissingInput && "\(e)".contains(file) && "\(e)".contains("scaling"), "\(e)")
        }
    }
}
