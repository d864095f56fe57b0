import Autodiff
import Foundation
import SafeTensors
import Testing
import VariableScopes

@testable import Model

/// Every golden case computed by TensorFlow (`anchors/tf_reference.py`): set the weights, run forward
/// and backward, and compare predictions, attention, loss and every gradient within 1e-4 relative error.
@Suite("TensorFlow golden cases")
struct GoldenTests {
    /// `$GOLDEN_DIR` alone when set; otherwise `../shared/golden` and the project's own cases in
    /// `Tests/Fixtures/golden` (copies of the shared ones plus more sizes made with the same script).
    static var goldenRoots: [URL] {
        if let dir = ProcessInfo.processInfo.environment["GOLDEN_DIR"] { return [URL(fileURLWithPath: dir)] }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return [
            here.appendingPathComponent("../../../shared/golden").standardized,
            here.appendingPathComponent("../Fixtures/golden").standardized,
        ]
    }

    /// Case folders by name; a shared case wins over the fixture copy of the same name.
    static var caseDirectories: [String: URL] {
        var out: [String: URL] = [:]
        for root in goldenRoots.reversed() {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] {
                let dir = root.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("case.json").path) {
                    out[name] = dir
                }
            }
        }
        return out
    }

    static var cases: [String] { caseDirectories.keys.sorted() }

    /// max |ours - golden| / max |golden|.
    static func relativeError(_ ours: [Float], _ golden: [Float]) -> Float {
        precondition(ours.count == golden.count)
        let scale = golden.map(abs).max() ?? 0
        let diff = zip(ours, golden).map { abs($0 - $1) }.max() ?? 0
        return scale == 0 ? diff : diff / scale
    }

    @Test("at least one golden case is present")
    func present() { #expect(!Self.cases.isEmpty, "no golden cases under \(Self.goldenRoots.map(\.path))") }

    @Test("forward and backward match TensorFlow", arguments: cases)
    func matches(caseName: String) throws {
        let dir = try #require(Self.caseDirectories[caseName])
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("case.json")))
            as! [String: Any]
        let config = ModelConfig(
            batch: json["batch"] as! Int, window: json["window"] as! Int, horizon: json["horizon"] as! Int,
            inputDim: json["input_dim"] as? Int ?? 1, hidden: json["hidden"] as! Int, hidden2: json["hidden2"] as! Int)
        // The float64 file, rounded once to float32, is the most exact reference for float32 weights.
        let tensors = try SafeTensors.read(dir.appendingPathComponent("case_f64.safetensors").path)
        let model = try Seq2Seq(config)

        let expectedNames = (json["variables"] as! [[Any]]).map { $0[0] as! String }
        #expect(model.variables.map(\.name) == expectedNames)
        for v in model.variables {
            let p = try #require(tensors["param/\(v.name)"], "no param/\(v.name) in \(caseName)")
            #expect(p.shape == v.shape)
            v.assign(p.scalars)
        }
        model.x.feed(tensors["input/x"]!.scalars)
        model.y.feed(tensors["input/y"]!.scalars)
        let loss = model.forwardBackward()

        #expect(Self.relativeError([loss], tensors["output/loss"]!.scalars) < 1e-4)
        #expect(Self.relativeError(Array(model.predictions.value), tensors["output/predictions"]!.scalars) < 1e-4)
        // Golden attention is [B, H, T]; ours is H nodes of [B, T].
        let (B, H, T) = (config.batch, config.horizon, config.window)
        var attention = [Float](repeating: 0, count: B * H * T)
        for (t, a) in model.attention.enumerated() {
            for b in 0..<B { for s in 0..<T { attention[(b * H + t) * T + s] = a.value[b * T + s] } }
        }
        #expect(Self.relativeError(attention, tensors["output/attention"]!.scalars) < 1e-4)
        for v in model.variables {
            let g = tensors["grad/\(v.name)"]!
            let err = Self.relativeError(Array(v.gradient), g.scalars)
            #expect(err < 1e-4, "gradient of \(v.name): relative error \(err)")
        }
    }
}
