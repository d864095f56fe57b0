import Datasets
import Foundation
import Logging
import Model
import SafeTensors
import Testing
import Training
import VariableScopes

@testable import Forecasting

/// A temporary directory removed when the value goes away.
final class TempDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("forecast-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Untrained models (seeded initial values) saved as model files: forecasting, intervals and export are
/// checked for what they compute, which needs no training.
enum Fixture {
    static func dataset(_ series: Series, scaling: Scaling, window: Int = 6, horizon: Int = 3) throws -> Dataset {
        let season = scaling.needsSeason ? (ModelSelection.season(of: series) ?? 52) : nil
        return try Dataset(series, window: window, horizon: horizon, scaling: scaling, season: season)
    }

    /// Saves a seeded model for `series` with `scaling` in `dir` and returns its path.
    static func modelFile(
        _ series: Series, scaling: Scaling, in dir: String, window: Int = 6, horizon: Int = 3, seed: UInt64 = 1,
        name: String = "m.safetensors"
    ) throws -> String {
        let dataset = try dataset(series, scaling: scaling, window: window, horizon: horizon)
        let config = ModelConfig(
            batch: 4, window: window, horizon: horizon, inputDim: series.dimension, hidden: 8, hidden2: 5)
        let m = try Seq2Seq(config, graph: Graph(seed: seed))
        let spec = ModelSpec(config: config, dataset: dataset, series: series, validationFraction: 0.1)
        let path = "\(dir)/\(name)"
        try ModelFile.save(m, dataset: dataset, spec: spec, to: path)
        return path
    }
}

@Suite("Forecasting")
struct ForecastingTests {
    @Test(
        "the model's inputs and offsets for a history are exactly Dataset's windows, for every scaling",
        arguments: Scaling.allCases)
    func scalingMatchesDataset(_ scaling: Scaling) throws {
        let series = try BuiltinSeries.co2.load()
        let dataset = try Fixture.dataset(series, scaling: scaling, window: 8, horizon: 12)
        let dir = try TempDir()
        let model = try ForecastModel.load(
            modelFile: try Fixture.modelFile(series, scaling: scaling, in: dir.path, window: 8, horizon: 12))
        let w = dataset.heldOut
        let n = dataset.normalizer
        for i in stride(from: 0, to: w.count, by: 37) {
            let e = w.origins[i]
            let rows = Array(series.values[(e - model.inputLength + 1)...e])
            let z = rows.map { r in r.indices.map { (r[$0] - n.mean[$0]) / n.std[$0] } }
            let (inputs, offsets) = ForecastModel.scale(z, spec: model.spec)
            for k in 0..<inputs.count { #expect(abs(Float(inputs[k]) - w.inputs[i * 8 + k]) < 1e-5) }
            for h in 0..<12 { #expect(abs(offsets[h] - w.offsets[i * 12 + h]) < 1e-9) }
        }
    }

    @Test("a forecast equals the model run on Dataset's window, shifted and unnormalised")
    func forecastMatchesModel() throws {
        let series = try BuiltinSeries.sunspots.load()
        let dir = try TempDir()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let model = try ForecastModel.load(modelFile: path)
        let dataset = try Fixture.dataset(series, scaling: .relative)
        let reference = try Seq2Seq(model.spec.config, graph: Graph(seed: 1))
        let w = dataset.heldOut
        w.fill(0..<4, x: reference.x.value, y: reference.y.value)
        reference.forward()
        let got = try model.forecast(model.histories(series, origins: Array(w.origins[0..<4])))
        for r in 0..<4 {
            for h in 0..<3 {
                let want =
                    (Double(reference.predictions.value[r * 3 + h]) + w.offsets[r * 3 + h]) * dataset.normalizer.std[0]
                    + dataset.normalizer.mean[0]
                #expect(abs(got[r][h] - want) <= 1e-5 * max(1, abs(want)))
            }
        }
    }

    @Test("split-conformal: the ⌈(n+1)·level⌉-th smallest residual; a level with too few windows is refused")
    func conformal() {
        let residuals = (1...19).map { v in [Double(v), Double(20 - v)] }
        let ci = ConformalIntervals(residuals: residuals, horizon: 2, levels: [0.8, 0.95, 0.99])
        #expect(ci.halfWidths[0.8] == [16, 16])  // ⌈20 · 0.8⌉ = 16
        #expect(ci.halfWidths[0.95] == [19, 19])  // ⌈20 · 0.95⌉ = 19
        #expect(ci.halfWidths[0.99] == nil && ci.refused.map(\.level) == [0.99])
        #expect(ConformalIntervals.windowsNeeded(0.8) == 4 && ConformalIntervals.windowsNeeded(0.95) == 19)
    }

    @Test("MAE, RMSE, M4 sMAPE and MASE on a hand-worked case")
    func metrics() {
        let m = ForecastMetrics(forecasts: [[2, 2]], truths: [[1, 2]], scale: 0.25)
        #expect(m.mae == 0.5)
        #expect(abs(m.rmse - 0.5.squareRoot()) < 1e-12)
        #expect(abs(m.smape - 100.0 / 3) < 1e-9)  // (200·1/3 + 0) / 2
        #expect(m.mase == 2)
    }

    @Test("time columns continue: weekly and monthly dates, integer years, else step numbers")
    func timeAxis() throws {
        let weekly = TimeAxis.detect(name: "date", cells: ["2001-12-15", "2001-12-22", "2001-12-29"])
        #expect(weekly.label(3) == "2002-01-05" && weekly.label(4) == "2002-01-12")
        let monthly = TimeAxis.detect(name: "month", cells: ["2001-10-01", "2001-11-01", "2001-12-01"])
        #expect(monthly.label(3) == "2002-01-01" && monthly.label(5) == "2002-03-01")
        let quarterly = TimeAxis.detect(name: "q", cells: ["2001-01-01", "2001-04-01", "2001-07-01"])
        #expect(quarterly.label(3) == "2001-10-01")
        let daily = TimeAxis.detect(name: "d", cells: ["2001-02-27", "2001-02-28", "2001-03-01"])
        #expect(daily.label(3) == "2001-03-02")
        let years = TimeAxis.detect(name: "year", cells: ["2006", "2007", "2008"])
        #expect(years.label(3) == "2009" && years.label(8) == "2014")
        let other = TimeAxis.detect(name: "id", cells: ["a", "b", "c"])
        #expect(other.name == "step" && other.label(3) == "4")
        let co2 = try #require(try TimeAxis.read(csv: BuiltinSeries.co2.csvText!, column: nil, dataColumns: ["co2"]))
        #expect(co2.name == "date" && co2.kind != .steps)
    }

    @Test("a model file without its description, other columns and a different horizon are named errors")
    func mismatches() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.sunspots.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let bare = "\(dir.path)/bare.safetensors"
        try writeReplacing(SafeTensors.encode([(name: "x", shape: [1], scalars: [0])]), to: bare)
        #expect(throws: ForecastError.noSpec(bare)) { try ForecastModel.load(modelFile: bare) }
        let model = try ForecastModel.load(modelFile: path)
        #expect(throws: ForecastError.columns(model: ["sunspots"], data: ["co2"])) {
            try ForecastData.load("co2", columns: [], timeColumn: nil, spec: model.spec)
        }
        let short = Series(name: "short", columns: ["sunspots"], values: [[1], [2]])
        #expect(throws: ForecastError.self) { try model.histories(short, origins: [1]) }
        let status = ForecastCommand.run(
            .init(
                source: .file(path), data: nil, columns: [], timeColumn: nil, horizon: 5, origin: nil, format: .csv,
                output: nil, levels: [], backtest: nil, serve: false, port: 0, bind: "127.0.0.1", maxBodyBytes: 1 << 20,
                reloadSeconds: 1, exportONNX: nil), logger: Logger(label: "t"))
        #expect(status == .usage)
    }

    @Test("a forecast from a date origin is labelled from the next date on and carries its intervals")
    func forecastOutput() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.co2.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let model = try ForecastModel.load(modelFile: path)
        let data = try ForecastData.load(nil, columns: [], timeColumn: nil, spec: model.spec)
        let origin = try ForecastRun.originRow("2001-06-02", data: data)
        let out = try ForecastRun.forecast(model, data: data, origin: origin, levels: [0.8, 0.95])
        #expect(out.times == ["2001-06-09", "2001-06-16", "2001-06-23"])
        let lines = out.csv().split(separator: "\n")
        #expect(lines[0] == "date,co2,lo_80,hi_80,lo_95,hi_95" && lines.count == 4)
        for i in out.intervals { #expect(zip(i.lower, i.upper).allSatisfy { $0 < $1 }) }
        // Calibration windows end by the origin.
        #expect(out.calibrationWindows == Backtest.calibrationOrigins(model, series: series, before: origin).count)
    }
}
