import Foundation
import Testing

@testable import Datasets

@Suite("CSV input")
struct CSVTests {
    func temp(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("series-\(UUID().uuidString).csv").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("empty cells are interpolated linearly; edges take the nearest value")
    func emptyCells() throws {
        let s = try CSVSeries.parse("t,v\n1,\n2,1\n3,\n4,\n5,4\n6,\n", source: "x.csv", columns: ["v"])
        #expect(s.values.map { $0[0] } == [1, 1, 2, 3, 4, 4])
        #expect(s.filledCells == 4)
    }

    @Test("every other cell of a 200,000-row column empty: filled in one pass, and said so")
    func manyEmptyCells() throws {
        let column: [Double?] = (0..<200_000).map { $0 % 2 == 0 ? Double($0) : nil }
        let filled = CSVSeries.interpolate(column)
        #expect(filled[1] == 1 && filled[199_997] == 199_997 && filled[199_999] == 199_998)
        let s = Series(name: "gaps.csv", columns: ["v"], values: filled.map { [$0] }, filledCells: 100_000)
        #expect(s.filledNotice?.contains("gaps.csv: 100000 empty cells filled") == true)
        #expect(Series(name: "x", columns: ["v"], values: [[1]]).filledNotice == nil)
    }

    @Test("a series of tiny values keeps its spread: only a constant column gets the 1e-12 floor")
    func tinySpread() {
        let tiny = Normalizer(fitting: [[1e-30], [3e-30], [1e-30], [3e-30]], count: 4)
        #expect(abs(tiny.std[0] - 1e-30) < 1e-40)
        let constant = Normalizer(fitting: [[5], [5], [5]], count: 3)
        #expect(constant.std[0] == 1e-12)
        // Ten 0.1s have a mean of 0.09999999999999999 and a rounding spread of 1.4e-17: still constant.
        let tenths = Normalizer(fitting: Array(repeating: [0.1], count: 10), count: 10)
        #expect(tenths.std[0] == 1e-12)
        // A spread below float32's reach is floored where float32 still holds it.
        #expect(Normalizer(fitting: [[1e-50], [3e-50]], count: 2).std[0] == 1e-30)
    }

    @Test("the shipped CO2 series has its 59 empty cells filled")
    func co2() throws {
        let s = try BuiltinSeries.co2.load()
        #expect(s.count == 2284)
        #expect(s.filledCells == 59)
        #expect(s.values.allSatisfy { $0[0] > 300 && $0[0] < 400 })
        #expect(try BuiltinSeries.sunspots.load().count == 309)
    }

    @Test(
        "the built-in series are the checked-in CSV files byte for byte, compiled in as resources",
        arguments: [(BuiltinSeries.co2, "co2_weekly_mauna_loa.csv"), (.sunspots, "sunspots_yearly.csv")])
    func resources(series: BuiltinSeries, file: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let onDisk = try String(
            contentsOf: root.appendingPathComponent("Sources/Datasets/Resources/\(file)"), encoding: .utf8)
        #expect(series.csvText == onDisk)
        // data/ holds links to the same files, for the Python scripts: one copy, nothing to drift.
        let linked = try String(contentsOf: root.appendingPathComponent("data/\(file)"), encoding: .utf8)
        #expect(linked == onDisk)
        #expect(BuiltinSeries.synthetic.csvText == nil)
    }

    @Test("a missing file, a missing column and a non-numeric cell each get an error naming it")
    func errors() throws {
        #expect(throws: DataError.fileNotFound(path: "/no/such.csv")) {
            try CSVSeries.load(path: "/no/such.csv", columns: ["v"])
        }
        let path = try temp("date,co2\n2001,1\n2002,x y\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let missing = #expect(throws: DataError.self) { try CSVSeries.load(path: path, columns: ["ppm"]) }
        #expect(missing == .missingColumn(path: path, column: "ppm", available: ["date", "co2"]))
        #expect("\(missing!)".contains("date, co2"))
        #expect(throws: DataError.nonNumeric(path: path, line: 3, column: "co2", cell: "x y")) {
            try CSVSeries.load(path: path, columns: ["co2"])
        }
        #expect(throws: DataError.noValues(path: "e.csv", column: "v")) {
            try CSVSeries.parse("v\n\n,\n", source: "e.csv", columns: ["v"])
        }
    }

    @Test("several columns: the first is the target, all are inputs")
    func multiColumn() throws {
        let s = try CSVSeries.parse("a,b\n1,10\n2,20\n", source: "m.csv", columns: ["b", "a"])
        #expect(s.values == [[10, 1], [20, 2]])
    }
}

@Suite("Windows, normalisation, splits and shards")
struct WindowTests {
    let series = Series(name: "ramp", columns: ["v"], values: (0..<100).map { [Double($0)] })

    @Test("normalisation comes from the training split only")
    func trainOnlyNormalisation() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global, validationFraction: 0)
        #expect(abs(d.normalizer.mean[0] - 39.5) < 1e-9)  // mean of 0..<80
        let squares: [Double] = (0..<80).map { (Double($0) - 39.5) * (Double($0) - 39.5) }
        let std = (squares.reduce(0, +) / 80).squareRoot()
        #expect(abs(d.normalizer.std[0] - std) < 1e-9)
    }

    @Test("windows: T inputs and the next H targets; held-out targets lie after the cut")
    func windows() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global, validationFraction: 0)
        #expect(d.validation.count == 0)
        #expect(d.train.count == 80 - 6 + 1)
        #expect(d.heldOut.count == 100 - (80 - 4) - 6 + 1)
        let unz = { (v: Float) in Double(v) * d.normalizer.std[0] + d.normalizer.mean[0] }
        #expect(abs(unz(d.train.inputs[0]) - 0) < 1e-4 && abs(unz(d.train.targets[0]) - 4) < 1e-4)
        // The first held-out window's first target is the first value after the cut.
        #expect(abs(unz(d.heldOut.targets[0]) - 80) < 1e-4)
    }

    @Test("relative scaling: inputs end at 0, targets relative to the last input, naive forecast is 0")
    func relative() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .relative)
        #expect(d.train.inputs[3] == 0)
        // The offset is the last observed value, so a zero output is the naive forecast.
        for i in 0..<d.train.count {
            for k in 0..<2 { #expect(d.train.offsets[i * 2 + k] == d.train.history[d.train.origins[i]]) }
        }
        let step = Float(1 / d.normalizer.std[0])
        #expect(abs(d.train.targets[0] - step) < 1e-5 && abs(d.train.targets[1] - 2 * step) < 1e-5)
        #expect(abs(d.train.inputs[0] + 3 * step) < 1e-5)
    }

    @Test("the validation split is the end of the training split: never trained on, before the held-out part")
    func validationSplit() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global, validationFraction: 0.1)
        // cut 80, validation from 72: training targets end before 72, validation targets lie in 72..<80.
        #expect(abs(d.normalizer.mean[0] - 35.5) < 1e-9)  // mean of 0..<72: fitted on what is trained on
        #expect(d.train.count == 72 - 6 + 1)
        #expect(d.train.origins.allSatisfy { $0 + 2 < 72 })
        #expect(d.validation.count == 80 - 72 - 2 + 1)
        #expect(d.validation.origins.first! + 1 == 72 && d.validation.origins.last! + 2 == 79)
        #expect(d.heldOut.origins.first! + 1 == 80 && d.heldOut.origins.last! + 2 == 99)
        #expect(d.windows(.validation).count == d.validation.count)
    }

    @Test(
        "seasonal scaling: inputs are the seasonal difference relative to its last value; targets plus offsets give the series back"
    )
    func seasonal() throws {
        // Period 4, and a trend of 1 per step.
        let values = (0..<60).map { t in [Double(t) + [0, 3, 1, -2][t % 4]] }
        let s = Series(name: "season4", columns: ["v"], values: values)
        let d = try Dataset(s, window: 3, horizon: 5, scaling: .seasonal, season: 4, validationFraction: 0)
        let z = d.train.history
        // The first window must see 4 steps back from its inputs and 8 back from its origin (horizon 5 > 4).
        #expect(d.train.origins[0] == 8)
        let e = d.train.origins[0]
        for t in 0..<3 {
            let x = Double(d.train.inputs[t])
            let expected = (z[e - 2 + t] - z[e - 2 + t - 4]) - (z[e] - z[e - 4])
            #expect(abs(x - expected) < 1e-6)
        }
        // A season that repeats exactly and a steady trend leave nothing to learn.
        #expect(d.train.targets.allSatisfy { abs($0) < 1e-5 })
        for i in [0, 7] {
            for k in 1...5 {
                #expect(
                    abs(
                        Double(d.train.targets[i * 5 + k - 1]) + d.train.offsets[i * 5 + k - 1]
                            - d.train.truth(i, step: k)) < 1e-6)
            }
        }
        #expect(throws: DataError.seasonNeeded(name: "season4")) {
            try Dataset(s, window: 3, horizon: 5, scaling: .seasonal)
        }
    }

    @Test(
        "seasonal-difference scaling: inputs are the seasonal difference itself; a zero output is exactly the seasonal-naive forecast"
    )
    func seasonalDifference() throws {
        // Period 4, a trend of 1 per step and noise, so that nothing cancels by accident.
        let values = (0..<80).map { t in [Double(t) + [0, 3, 1, -2][t % 4] + sin(Double(t) * 1.7)] }
        let s = Series(name: "season4", columns: ["v"], values: values)
        let d = try Dataset(s, window: 3, horizon: 6, scaling: .seasonalDifference, season: 4, validationFraction: 0)
        let z = d.train.history
        let e = d.train.origins[0]
        for t in 0..<3 {
            #expect(abs(Double(d.train.inputs[t]) - (z[e - 2 + t] - z[e - 2 + t - 4])) < 1e-6)
        }
        for w in [d.train, d.heldOut] {
            for i in 0..<w.count {
                for k in 1...6 {
                    let offset = w.offsets[(i * 6) + k - 1]
                    let snaive = Baseline.seasonalNaive(period: 4).forecast(z, origin: w.origins[i], window: 3, step: k)
                    #expect(abs(offset - snaive) < 1e-12)
                    #expect(abs(Double(w.targets[i * 6 + k - 1]) + offset - w.truth(i, step: k)) < 1e-5)
                }
            }
        }
        // So the offsets alone score exactly seasonal-naive's MSE.
        var squares = 0.0
        for i in 0..<d.heldOut.count {
            for k in 1...6 { squares += pow(d.heldOut.offsets[i * 6 + k - 1] - d.heldOut.truth(i, step: k), 2) }
        }
        let snaiveMSE = d.heldOut.meanSquaredError(of: .seasonalNaive(period: 4))
        #expect(abs(squares / Double(d.heldOut.count * 6) - snaiveMSE) < 1e-12)
        #expect(throws: DataError.seasonNeeded(name: "season4")) {
            try Dataset(s, window: 3, horizon: 5, scaling: .seasonalDifference)
        }
    }

    @Test("shards are disjoint and cover every window", arguments: [1, 2, 3, 7])
    func shards(workers: Int) {
        let all = (0..<workers).flatMap { shard(50, index: $0, of: workers) }
        #expect(all.sorted() == Array(0..<50))
        #expect(Set(all).count == 50)
    }

    @Test("fill copies the chosen windows and zeroes the rows of a short last batch")
    func fill() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global)
        var x = [Float](repeating: 9, count: 3 * 4)
        var y = [Float](repeating: 9, count: 3 * 2)
        x.withUnsafeMutableBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in d.train.fill([5, 2], x: px, y: py) }
        }
        #expect(Array(x[0..<4]) == Array(d.train.inputs[20..<24]) && Array(x[4..<8]) == Array(d.train.inputs[8..<12]))
        #expect(Array(y[0..<2]) == Array(d.train.targets[10..<12]))
        #expect(x[8...].allSatisfy { $0 == 0 } && y[4...].allSatisfy { $0 == 0 })
    }

    @Test("a series too short for window, horizon and a held-out part is refused with its length")
    func tooShort() {
        let short = Series(name: "short", columns: ["v"], values: (0..<10).map { [Double($0)] })
        #expect(throws: DataError.self) { try Dataset(short, window: 8, horizon: 4) }
        // With a small validation fraction the validation part needs many more rows than the rest.
        do {
            _ = try Dataset(short, window: 24, horizon: 12, validationFraction: 0.01)
            Issue.record("10 rows were accepted")
        } catch DataError.tooShort(_, _, let needed, _) {
            let rows = (0..<needed).map { [sin(Double($0))] }
            #expect(needed >= 1500)
            #expect(throws: Never.self) {
                try Dataset(Series(name: "s", columns: ["v"], values: rows), window: 24, horizon: 12, validationFraction: 0.01)
            }
            #expect(throws: DataError.self) {
                try Dataset(Series(name: "s", columns: ["v"], values: Array(rows.dropLast())), window: 24, horizon: 12, validationFraction: 0.01)
            }
        } catch { Issue.record("\(error)") }
        // The length it asks for is the least that works, not a bound twice as large; with a season, it says so.
        for scaling in [Scaling.relative, .seasonalDifference] {
            do {
                _ = try Dataset(short, window: 24, horizon: 8, scaling: scaling, season: 4)
                Issue.record("10 rows were accepted")
            } catch DataError.tooShort(_, _, let needed, let season) {
                let rows = (0..<needed).map { [sin(Double($0))] }
                #expect(throws: Never.self) {
                    try Dataset(Series(name: "s", columns: ["v"], values: rows), window: 24, horizon: 8, scaling: scaling, season: 4)
                }
                #expect(throws: DataError.self) {
                    try Dataset(Series(name: "s", columns: ["v"], values: Array(rows.dropLast())), window: 24, horizon: 8, scaling: scaling, season: 4)
                }
                #expect(season == (scaling == .relative ? nil : 4))
            } catch { Issue.record("\(error)") }
        }
    }

    @Test("the synthetic series is the same for the same seed")
    func synthetic() throws {
        let a = try BuiltinSeries.synthetic.load(seed: 1)
        let b = try BuiltinSeries.synthetic.load(seed: 1)
        let c = try BuiltinSeries.synthetic.load(seed: 2)
        #expect(a.values == b.values && a.values != c.values)
    }
}

@Suite("Baselines")
struct BaselineTests {
    let history: [Double] = [1, 2, 3, 4, 5, 6, 7, 8]

    @Test("naive repeats the last value, seasonal-naive the last season, window mean the window's mean (by hand)")
    func forecasts() {
        // Origin 5 (value 6), window 3 (values 4, 5, 6).
        #expect((1...3).map { Baseline.naive.forecast(history, origin: 5, window: 3, step: $0) } == [6, 6, 6])
        // Period 2: steps 1, 2 take 5, 6 (one season back); step 3 takes 5 again (two seasons back).
        #expect(
            (1...3).map { Baseline.seasonalNaive(period: 2).forecast(history, origin: 5, window: 3, step: $0) } == [
                5, 6, 5,
            ])
        #expect(Baseline.seasonalNaive(period: 3).forecast(history, origin: 5, window: 3, step: 1) == 4)
        #expect(Baseline.windowMean.forecast(history, origin: 5, window: 3, step: 2) == 5)
        // A season reaching before the start falls back to naive.
        #expect(Baseline.seasonalNaive(period: 4).forecast(history, origin: 1, window: 2, step: 1) == 2)
    }

    @Test("the baselines' MSE over a data set's windows, checked by hand")
    func meanSquaredError() throws {
        // 0, 1, 0, 1, ... plus t/10: period 2. Window 2, horizon 2.
        let values = (0..<40).map { [Double($0 % 2) + Double($0) / 10] }
        let d = try Dataset(
            Series(name: "alt", columns: ["v"], values: values), window: 2, horizon: 2, scaling: .global, season: 2,
            validationFraction: 0)
        let w = d.heldOut
        let sd = d.normalizer.std[0]
        // Naive: one step ahead is off by 1 ± 0.1, two steps ahead by 0.2.
        var naive = 0.0
        var seasonal = 0.0
        var mean = 0.0
        for e in w.origins {
            let up = e % 2 == 0  // the next value jumps up
            naive += pow(up ? 1.1 : -0.9, 2) + 0.2 * 0.2
            seasonal += 0.2 * 0.2 + 0.2 * 0.2
            let m = (values[e][0] + values[e - 1][0]) / 2
            mean += pow(values[e + 1][0] - m, 2) + pow(values[e + 2][0] - m, 2)
        }
        let n = Double(2 * w.count) * sd * sd
        #expect(abs(w.meanSquaredError(of: .naive) - naive / n) < 1e-9)
        #expect(abs(w.meanSquaredError(of: .seasonalNaive(period: 2)) - seasonal / n) < 1e-9)
        #expect(abs(w.meanSquaredError(of: .windowMean) - mean / n) < 1e-9)
    }
}

@Suite("Season detection")
struct SeasonTests {
    /// Deterministic noise in [-0.5, 0.5).
    static func noise(_ n: Int, seed: UInt64) -> [Double] {
        var s = seed &+ 0x9E37_79B9_7F4A_7C15
        return (0..<n).map { _ in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(s >> 11) / Double(1 << 53) - 0.5
        }
    }

    @Test("a yearly cycle under a trend is found at its period, not a multiple", arguments: [12, 52])
    func cycle(period: Int) {
        let e = Self.noise(1500, seed: UInt64(period))
        let v = (0..<1500).map { t in 0.01 * Double(t) + sin(2 * .pi * Double(t) / Double(period)) + e[t] }
        #expect(SeasonDetection.period(of: v) == period)
    }

    @Test("a million rows: detection reads the last maxPoints only, and finds the period there")
    func longSeries() {
        let n = 1_000_000
        let e = Self.noise(n, seed: 3)
        let v = (0..<n).map { t in sin(2 * .pi * Double(t) / 44) + e[t] }
        #expect(SeasonDetection.period(of: v) == 44)
        // What it reads is the tail: a different cycle before it does not count.
        let head = (0..<n).map { t in t < n - 30_000 ? sin(2 * .pi * Double(t) / 7) : v[t] }
        #expect(SeasonDetection.period(of: head) == 44)
    }

    @Test("white noise and a pure trend have no season")
    func none() {
        #expect(SeasonDetection.period(of: Self.noise(1000, seed: 1)) == nil)
        let e = Self.noise(1000, seed: 2)
        #expect(SeasonDetection.period(of: (0..<1000).map { 0.05 * Double($0) + e[$0] }) == nil)
    }

    @Test("the shipped series: CO2 weekly repeats every 52 weeks, sunspots every 11 years")
    func shipped() throws {
        let co2 = try BuiltinSeries.co2.load().values.map { $0[0] }
        let sunspots = try BuiltinSeries.sunspots.load().values.map { $0[0] }
        #expect(SeasonDetection.period(of: Array(co2[..<1644])) == 52)
        #expect(SeasonDetection.period(of: Array(sunspots[..<222])) == 11)
    }
}
