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

    @Test("the shipped CO2 series has its 59 empty cells filled")
    func co2() throws {
        let s = try BuiltinSeries.co2.load()
        #expect(s.count == 2284)
        #expect(s.filledCells == 59)
        #expect(s.values.allSatisfy { $0[0] > 300 && $0[0] < 400 })
        #expect(try BuiltinSeries.sunspots.load().count == 309)
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
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global)
        #expect(abs(d.normalizer.mean[0] - 39.5) < 1e-9)  // mean of 0..<80
        let squares: [Double] = (0..<80).map { (Double($0) - 39.5) * (Double($0) - 39.5) }
        let std = (squares.reduce(0, +) / 80).squareRoot()
        #expect(abs(d.normalizer.std[0] - std) < 1e-9)
    }

    @Test("windows: T inputs and the next H targets; held-out targets lie after the cut")
    func windows() throws {
        let d = try Dataset(series, window: 4, horizon: 2, scaling: .global)
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
        #expect(d.train.levels.allSatisfy { $0 == 0 })
        let step = Float(1 / d.normalizer.std[0])
        #expect(abs(d.train.targets[0] - step) < 1e-5 && abs(d.train.targets[1] - 2 * step) < 1e-5)
        #expect(abs(d.train.inputs[0] + 3 * step) < 1e-5)
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
    }

    @Test("the synthetic series is the same for the same seed")
    func synthetic() throws {
        let a = try BuiltinSeries.synthetic.load(seed: 1)
        let b = try BuiltinSeries.synthetic.load(seed: 1)
        let c = try BuiltinSeries.synthetic.load(seed: 2)
        #expect(a.values == b.values && a.values != c.values)
    }
}
