import Datasets
import Foundation
import Testing
import Training

@testable import Forecasting

/// The ONNX export against ONNX Runtime from PyPI (installed by scripts/test.sh).
@Suite("ONNX export")
struct ONNXTests {
    @Test(
        "ONNX Runtime's forecasts equal forecast's within a relative 1e-5 (of the forecast, at least the series' standard deviation) on 100 windows",
        arguments: [(Scaling.relative, "sunspots"), (.global, "sunspots"), (.seasonal, "co2"), (.seasonalDifference, "co2"),
            // Period 11, horizon 12: a step two seasons back.
            (.seasonalDifference, "sunspots"),
        ])
    func equalsForecast(_ scaling: Scaling, _ data: String) throws {
        let dir = try TempDir()
        let series = try BuiltinSeries(rawValue: data)!.load()
        let model = try ForecastModel.load(
            modelFile: try Fixture.modelFile(series, scaling: scaling, in: dir.path, window: 8, horizon: 12))
        let onnx = "\(dir.path)/m.onnx"
        try ONNXExport.write(model, to: onnx)
        let L = model.inputLength
        let origins = (0..<100).map { (L - 1) + $0 * (series.count - L - 1) / 99 }
        let histories = try model.histories(series, origins: origins)
        let want = try model.forecast(histories)
        let input = "\(dir.path)/in.json"
        try JSONSerialization.data(withJSONObject: histories).write(to: URL(fileURLWithPath: input))
        let script = """
            import json, sys
            import numpy as np, onnx, onnxruntime as ort
            onnx.checker.check_model(onnx.load(sys.argv[1]))
            s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
            assert [i.name for i in s.get_inputs()] == ["history"] and [o.name for o in s.get_outputs()] == ["forecast"]
            x = np.array(json.load(open(sys.argv[2])), dtype=np.float32)
            print(json.dumps(s.run(["forecast"], {"history": x})[0].astype(float).tolist()))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, onnx, input]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let bytes = out.fileHandleForReading.readDataToEndOfFile()  // ends when python exits
        p.waitUntilExit()
        try #require(
            p.terminationStatus == 0,
            "onnxruntime (pip install onnx onnxruntime): \(String(decoding: bytes, as: UTF8.self))")
        let got = try #require(try JSONSerialization.jsonObject(with: bytes) as? [[Double]])
        #expect(got.count == 100)
        // Relative to the forecast, or to the series' standard deviation where the forecast is nearer zero than
        // that: float32 rounding of the model's output is relative to the output times the standard deviation, and a
        // seasonal-difference forecast of sunspots can sit near 0 (last cycle's minimum).
        let floor = model.spec.normalizer.std[0]
        var worst = 0.0
        for (g, w) in zip(got, want) {
            for (a, b) in zip(g, w) { worst = max(worst, abs(a - b) / max(abs(b), floor)) }
        }
        print("ONNX \(scaling.rawValue) on \(data): largest relative difference \(worst) over 100 windows")
        #expect(worst <= 1e-5)
    }
}
