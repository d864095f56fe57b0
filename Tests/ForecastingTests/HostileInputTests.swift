import Datasets
import Foundation
import Model
import SafeTensors
import Testing
import Training
import VariableScopes

@testable import Forecasting

/// Inputs a user or an edited file can hand the forecasting tools, each of which once trapped, hung or
/// answered wrongly without a word (issue 20's adversarial round).
@Suite("Forecasting: hostile files and data")
struct HostileInputTests {
    /// Rewrites the `model` metadata of a model file with `edit` applied to its JSON object.
    static func editSpec(_ path: String, to out: String, _ edit: (inout [String: Any]) -> Void) throws {
        let file = try SafeTensors.load(path)
        var meta = file.metadata
        let text = try #require(meta["model"])
        var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        edit(&object)
        meta["model"] = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        meta["checksum"] = nil
        let tensors = file.tensors.map { (name: $0.key, shape: $0.value.shape, scalars: $0.value.scalars) }
        try writeReplacing(SafeTensors.encode(tensors, metadata: meta), to: out)
    }

    @Test("time labels past Int.max fall back to step numbers; a column whose steps overflow is no time axis")
    func timeAxisOverflow() {
        let top = Int.max
        let near = TimeAxis.detect(name: "year", cells: [String(top - 2), String(top - 1), String(top)])
        #expect(near.kind == .integers(last: top, step: 1))
        #expect(near.label(3) == "4")
        #expect(near.label(2) == String(top))
        let alternating = TimeAxis.detect(name: "year", cells: [String(Int.min + 1), String(top), String(Int.min + 1)])
        #expect(alternating.kind == .steps && alternating.label(3) == "4")
        let years = TimeAxis.detect(name: "year", cells: ["2006", "2007", "2008"])
        #expect(years.label(Int.max / 2) == String(2006 + Int.max / 2))
        #expect(years.label(Int.max) == String(Int.max))
    }

    @Test("a model description with a field out of range is refused naming the field, never trapping")
    func describedFields() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.sunspots.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("trainFraction", { $0["trainFraction"] = 1e300 }),
            ("trainFraction", { $0["trainFraction"] = -1 }),
            ("rows", { $0["rows"] = -5 }),
            ("version", { $0["version"] = 99 }),
            ("normalizer.std", { $0["normalizer"] = ["mean": [0.0], "std": [1e300]] }),
            ("season", { $0["scaling"] = "seasonal-difference"; $0["season"] = 0 }),
            ("season", { $0["season"] = 0 }),  // relative: a backtest still scales MASE with it
            ("season", { $0["season"] = Int.max }),
            ("normalizer.std", { $0["normalizer"] = ["mean": [0.0], "std": [1e-50]] }),
            // Every size in range, their product past what a reader builds: refused before any allocation.
            ("activations", {
                var c = $0["config"] as? [String: Any] ?? [:]
                (c["window"], c["horizon"], c["hidden"]) = (4096, 4096, 4096)
                $0["config"] = c
            }),
        ]
        for (i, (field, edit)) in cases.enumerated() {
            let out = "\(dir.path)/edited-\(i).safetensors"
            try Self.editSpec(path, to: out, edit)
            do {
                _ = try ForecastModel.load(modelFile: out)
                Issue.record("an edited \(field) was accepted")
            } catch let e as ForecastError {
                #expect("\(e)".contains(field) && "\(e)".contains(out), "\(e)")
            }
        }
        // The spec's own arithmetic cannot trap whatever it holds.
        var spec = try ForecastModel.load(modelFile: path).spec
        spec.trainFraction = 4
        spec.rows = Int.max
        #expect(spec.heldOutStart == Int.max)
        spec.trainFraction = 1e300
        #expect(spec.heldOutStart == Int.max)
        spec.trainFraction = .nan
        #expect(spec.heldOutStart == 0)
    }

    @Test("a description that is there but unreadable names the field; one whose sizes are not the variables' is refused before building")
    func unreadableAndMismatched() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.sunspots.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let bogus = "\(dir.path)/bogus.safetensors"
        try Self.editSpec(path, to: bogus) { $0["scaling"] = "bogus" }
        #expect {
            try ForecastModel.load(modelFile: bogus)
        } throws: { e in
            "\(e)".contains("scaling") && "\(e)".contains("cannot be read") && !"\(e)".contains("no 'model' metadata")
        }
        let missing = "\(dir.path)/missing.safetensors"
        try Self.editSpec(path, to: missing) { $0["rows"] = nil }
        #expect { try ForecastModel.load(modelFile: missing) } throws: { "\($0)".contains("field rows is missing") }
        let big = "\(dir.path)/big.safetensors"
        try Self.editSpec(path, to: big) { o in
            var c = o["config"] as! [String: Any]
            c["hidden"] = 4096
            o["config"] = c
        }
        #expect { try ForecastModel.load(modelFile: big) } throws: { e in
            guard case ForecastError.shape(let name, let file, let model) = e else { return false }
            return name == "encoder/rnn/lstm_cell/kernel" && file == [9, 32] && model == [4097, 16384]
        }
        // A variable missing from a model file is named; from a checkpoint directory it is incomplete, as a
        // server beside a run may not have written it yet.
        let file = try SafeTensors.load(path)
        let partial = "\(dir.path)/partial.safetensors"
        try writeReplacing(
            SafeTensors.encode(
                file.tensors.filter { $0.key != "encoder/rnn/lstm_cell/bias" }.map {
                    (name: $0.key, shape: $0.value.shape, scalars: $0.value.scalars)
                }, metadata: file.metadata.filter { $0.key != "checksum" }), to: partial)
        #expect { try ForecastModel.load(modelFile: partial) } throws: {
            "\($0)".contains("variable encoder/rnn/lstm_cell/bias is missing") && "\($0)".contains(partial)
        }
        let checkpoints = "\(dir.path)/checkpoints"
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        var meta = file.metadata.filter { $0.key != "checksum" }
        (meta["server"], meta["sequence"], meta["updates"]) = ("ps-0", "1", "5")
        try writeReplacing(
            SafeTensors.encode(
                file.tensors.filter { $0.key != "encoder/rnn/lstm_cell/bias" }.map {
                    (name: $0.key, shape: $0.value.shape, scalars: $0.value.scalars)
                }, metadata: meta, checksum: true), to: "\(checkpoints)/ps-0.safetensors")
        #expect(throws: ForecastError.incomplete(directory: checkpoints, missing: "encoder/rnn/lstm_cell/bias")) {
            try ForecastModel.load(checkpoints: checkpoints)
        }
    }

    @Test("model files carry a checksum: a flipped bit in a weight is refused, not forecast from")
    func checksum() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.sunspots.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        #expect(try SafeTensors.load(path).checksumVerified)
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count - 3] ^= 0x10  // inside the last tensor's data
        let damaged = "\(dir.path)/damaged.safetensors"
        try bytes.write(to: URL(fileURLWithPath: damaged))
        #expect { try ForecastModel.load(modelFile: damaged) } throws: { e in
            guard case SafeTensors.Error.checksumMismatch(let p, _, _) = e else { return false }
            return p == damaged
        }
        #expect { try ForecastModel.load(modelFile: dir.path) } throws: { "\($0)".contains("is a directory") }
    }

    @Test("JSON output writes null for a number that is not finite, never an empty document")
    func jsonNonFinite() throws {
        let text = jsonText(["mase": Double.nan, "ratios": [1.5, .infinity], "nested": ["x": -Double.infinity]])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["mase"] is NSNull)
        #expect((object["ratios"] as? [Any])?.last is NSNull)
        #expect((object["nested"] as? [String: Any])?["x"] is NSNull)
    }

    @Test("a value that is not a number is named by its kind in the server's errors, not shown as 1")
    func jsonKinds() throws {
        let decoded = try #require(
            try JSONSerialization.jsonObject(with: Data(#"[true, "1", null, [1], {"a": 1}, 2.5]"#.utf8)) as? [Any])
        #expect(decoded.map(jsonKind) == ["true", "the string \"1\"", "null", "an array", "an object", "2.5"])
        #expect(jsonNumber(decoded[0]) == nil && jsonNumber(decoded[5]) == 2.5)
    }

    @Test("where a file cannot be written is known before the work: a missing directory, a directory, a file")
    func unwritable() throws {
        let dir = try TempDir()
        #expect(unwritableReason("\(dir.path)/nope/m.safetensors")?.contains("does not exist") == true)
        #expect(unwritableReason(dir.path)?.contains("is a directory") == true)
        #expect(unwritableReason("\(dir.path)/m.safetensors") == nil)
        #expect(throws: SafeTensors.Error.self) { try writeReplacing(Data(), to: "\(dir.path)/nope/x") }
        #expect("\(SafeTensors.Error.unwritable(path: "p", reason: "r"))" == "cannot write p: r")
    }

    @Test("--time-column must name a time: a data column or one of neither dates nor integers is refused, not numbered")
    func timeColumnNamed() throws {
        let csv = "year,label,value\n1990,a,1\n1991,b,2\n1992,c,3\n"
        let years = try #require(try TimeAxis.read(csv: csv, column: "year", dataColumns: ["value"]))
        #expect(years.kind == .integers(last: 1992, step: 1))
        #expect { try TimeAxis.read(csv: csv, column: "label", dataColumns: ["value"]) } throws: {
            "\($0)".contains("--time-column label holds neither ISO dates")
        }
        #expect { try TimeAxis.read(csv: csv, column: "value", dataColumns: ["value"]) } throws: {
            "\($0)".contains("--time-column value is a column being forecast")
        }
        // The built-in synthetic series has no columns to name.
        let dir = try TempDir()
        let synthetic = try BuiltinSeries.synthetic.load()
        let spec = try ForecastModel.load(modelFile: try Fixture.modelFile(synthetic, scaling: .relative, in: dir.path)).spec
        #expect { try ForecastData.load("synthetic", columns: [], timeColumn: "date", spec: spec) } throws: {
            "\($0)".contains("--time-column date needs CSV data")
        }
        // Left to detection, a column of labels is no time and the rows are numbered, as before.
        let csv2 = "label,value\na,1\nb,2\n"
        #expect(try TimeAxis.read(csv: csv2, column: nil, dataColumns: ["value"]) == nil)
    }

    @Test("--origin under a column of years takes a year or #N; a bare number that is no year is refused, not a row")
    func originAmbiguity() throws {
        let series = Series(name: "s", columns: ["v"], values: (0..<30).map { [Double($0)] })
        let years = ForecastData(
            series: series, axis: TimeAxis.detect(name: "year", cells: (1990..<2020).map(String.init)))
        #expect(try ForecastRun.originRow("2000", data: years) == 10)
        #expect(try ForecastRun.originRow("#5", data: years) == 4)
        #expect { try ForecastRun.originRow("5", data: years) } throws: {
            "\($0)".contains("not a value of the time column year (1990...2019)") && "\($0)".contains("'#5'")
        }
        #expect { try ForecastRun.originRow("abc", data: years) } throws: { !"\($0)".contains("#") }
        #expect(throws: ForecastError.self) { try ForecastRun.originRow("#31", data: years) }
        #expect(throws: ForecastError.self) { try ForecastRun.originRow("#0", data: years) }
        // Dates and numbered rows cannot be mistaken for a row number: a bare N is a row there.
        let dates = ForecastData(
            series: series,
            axis: TimeAxis.detect(name: "date", cells: (1...30).map { String(format: "2001-01-%02d", $0) }))
        #expect(try ForecastRun.originRow("7", data: dates) == 6)
        #expect(try ForecastRun.originRow("2001-01-03", data: dates) == 2)
        let steps = ForecastData(series: series, axis: .steps(30))
        #expect(try ForecastRun.originRow("30", data: steps) == 29 && ForecastRun.originRow("#1", data: steps) == 0)
        #expect { try ForecastRun.originRow("31", data: steps) } throws: { "\($0)".contains("no time column") }
    }

    @Test("a ratio over an exact baseline is 1 when the model is exact too and infinite otherwise, never NaN")
    func exactBaseline() {
        #expect(errorRatio(0, over: 0) == 1)
        #expect(errorRatio(0.5, over: 0) == .infinity)
        #expect(errorRatio(1, over: 4) == 0.25)
        #expect(RollingOrigin.foldRatios(model: [0, 1], naive: [0, 0], folds: [0..<1, 1..<2]) == [1, .infinity])
    }

    @Test("the windows a conformal level needs come in a few steps even for 99.9999%, and match a count up")
    func windowsNeededClosedForm() {
        func countUp(_ level: Double) -> Int {
            var n = 1
            while Int((Double(n + 1) * level).rounded(.up)) > n { n += 1 }
            return n
        }
        for level in [0.01, 0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9999, 0.999999, 1 - 1e-7] {
            #expect(ConformalIntervals.windowsNeeded(level) == countUp(level), "level \(level)")
        }
        #expect(ConformalIntervals.windowsNeeded(0.9999999999999999) >= 1_000_000_000_000_000 / 100)
    }
}
