import Foundation
import Optimizers
import SafeTensors
import Testing
import Wire

@testable import ParameterServer

/// `Hello.model`: servers record the job's model description verbatim, for `forecast --restore`.
@Suite("Model description")
struct ModelDescriptionTests {
    @Test(
        "the first hello's model description is kept, written to the checkpoint and restored; an oversized one is not kept"
    )
    func recorded() throws {
        let d = Driver(Driver.config(.async))
        _ = d.request(
            .hello, worker: 0, body: Body.encode(Hello(workerName: "worker 0", numWorkers: 2, model: #"{"a":1}"#)))
        _ = d.request(
            .hello, worker: 1, body: Body.encode(Hello(workerName: "worker 1", numWorkers: 2, model: #"{"b":2}"#)))
        #expect(d.core.snapshot().model == #"{"a":1}"#)
        d.form(2, [spec("a/bias", [3])])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(directory: dir, name: "ps-0")
        let path = try #require(try store.write(d.core.snapshot(), config: d.core.config))
        #expect(try SafeTensors.metadata(path)["model"] == #"{"a":1}"#)
        let (state, _) = try #require(try CheckpointStore(directory: dir, name: "ps-0").newest())
        #expect(state.model == #"{"a":1}"#)

        let big = Driver(Driver.config(.async))
        let text = String(repeating: "x", count: Hello.maxModelBytes + 1)
        _ = big.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "worker 0", numWorkers: 1, model: text)))
        #expect(big.core.snapshot().model == nil)
    }
}
