import Foundation

/// A time series of one or more columns; the first column is the one forecast.
public struct Series: Sendable {
    public let name: String
    /// Column names, target first.
    public let columns: [String]
    /// values[t][d]: time-major, float64 as read.
    public let values: [[Double]]
    /// How many empty cells were filled (see `CSVSeries.parse`).
    public let filledCells: Int

    /// A line for the log when empty cells were filled, so that made-up values are never silent.
    public var filledNotice: String? {
        filledCells == 0
            ? nil
            : "\(name): \(filledCells) empty cell\(filledCells == 1 ? "" : "s") filled by linear interpolation between their neighbours (the first or last value at the ends)"
    }

    public init(name: String, columns: [String], values: [[Double]], filledCells: Int = 0) {
        self.name = name
        self.columns = columns
        self.values = values
        self.filledCells = filledCells
    }

    public var count: Int { values.count }
    public var dimension: Int { columns.count }
}

/// Why a data set could not be loaded; each message names the file, column or line.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case emptyFile(path: String)
    case missingColumn(path: String, column: String, available: [String])
    case nonNumeric(path: String, line: Int, column: String, cell: String)
    case noValues(path: String, column: String)
    case unknownBuiltin(name: String)
    /// `season`: the period the seasonal scalings look back, when it is part of what is needed.
    case tooShort(name: String, length: Int, needed: Int, season: Int? = nil)
    case unreadable(path: String, reason: String)
    case outOfRange(path: String, line: Int, column: String, cell: String)
    case seasonNeeded(name: String)

    public var description: String {
        switch self {
        case .fileNotFound(let p):
            return
                "data file \(p) does not exist: pass an existing CSV with --data, or a built-in name (synthetic, co2, sunspots)"
        case .emptyFile(let p): return "data file \(p) has no header line"
        case .missingColumn(let p, let c, let a):
            return
                "data file \(p) has no column '\(c)'; its columns are: \(a.joined(separator: ", ")). Pick one with --column"
        case .nonNumeric(let p, let l, let c, let v):
            return "\(p) line \(l): column '\(c)' holds '\(v)', which is not a number"
        case .noValues(let p, let c): return "\(p): column '\(c)' has no values at all"
        case .unknownBuiltin(let n):
            return "no built-in data set named '\(n)': use synthetic, co2 or sunspots, or a CSV path"
        case .unreadable(let p, let r): return "data file \(p) \(r)"
        case .outOfRange(let p, let l, let c, let v):
            return "\(p) line \(l): column '\(c)' holds \(v), too large in magnitude to train on in float32 (at most 1e30)"
        case .tooShort(let n, let l, let needed, let season):
            return
                "series \(n) has \(l) values; window + horizon\(season.map { ", a season of \($0) to look back" } ?? ""), a validation and a held-out part need at least \(needed)\(season == nil ? "" : " (a shorter --season, or --scaling relative, needs fewer)")"
        case .seasonNeeded(let n):
            return "seasonal scaling of \(n) needs a seasonal period: none was detected, so give one with --season"
        }
    }
}

/// CSV input. Policy for empty cells, as the reference does (pandas' `interpolate()`): each run of empty
/// cells is filled by linear interpolation between its neighbours; a run at the start takes the first
/// value, one at the end the last. Non-numeric cells are errors naming the line.
public enum CSVSeries {
    /// Loads `columns` (target first) from the CSV file at `path`.
    public static func load(path: String, columns: [String]) throws -> Series {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.fileNotFound(path: path)
        }
        guard !isDirectory.boolValue else { throw DataError.unreadable(path: path, reason: "is a directory, not a CSV file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.unreadable(path: path, reason: "cannot be read (permissions?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError.unreadable(path: path, reason: "is not UTF-8 text")
        }
        return try parse(text, source: path, columns: columns)
    }

    /// Parses CSV text with a header line; `source` names it in errors.
    public static func parse(_ text: String, source: String, columns wanted: [String]) throws -> Series {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let header = lines.first, !header.isEmpty else { throw DataError.emptyFile(path: source) }
        let names = header.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let indices = try wanted.map { w -> Int in
            guard let i = names.firstIndex(of: w) else {
                throw DataError.missingColumn(path: source, column: w, available: names)
            }
            return i
        }
        var raw: [[Double?]] = []
        for (n, line) in lines.dropFirst().enumerated() {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            raw.append(
                try indices.enumerated().map { (k, i) -> Double? in
                    let cell = i < cells.count ? cells[i] : ""
                    if cell.isEmpty { return nil }
                    guard let v = Double(cell), v.isFinite else {
                        throw DataError.nonNumeric(path: source, line: n + 2, column: wanted[k], cell: cell)
                    }
                    // Squares of larger values overflow float32 when the series is normalised.
                    guard abs(v) <= 1e30 else {
                        throw DataError.outOfRange(path: source, line: n + 2, column: wanted[k], cell: cell)
                    }
                    return v
                })
        }
        var filled = 0
        var columnsOut: [[Double]] = []
        for k in 0..<wanted.count {
            let column = raw.map { $0[k] }
            guard column.contains(where: { $0 != nil }) else {
                throw DataError.noValues(path: source, column: wanted[k])
            }
            filled += column.filter { $0 == nil }.count
            columnsOut.append(interpolate(column))
        }
        let values = (0..<raw.count).map { t in columnsOut.map { $0[t] } }
        return Series(name: source, columns: wanted, values: values, filledCells: filled)
    }

    /// Linear interpolation over gaps; edges take the nearest value.
    static func interpolate(_ column: [Double?]) -> [Double] {
        var out = [Double](repeating: 0, count: column.count)
        let known = column.indices.filter { column[$0] != nil }
        // One pass: `next` is the index in `known` of the first known row after t (linear, not a search per gap).
        var next = 0
        for t in column.indices {
            while next < known.count && known[next] <= t { next += 1 }
            if let v = column[t] {
                out[t] = v
                continue
            }
            let before = next > 0 ? known[next - 1] : nil
            let after = next < known.count ? known[next] : nil
            switch (before, after) {
            case (let b?, let a?):
                let w = Double(t - b) / Double(a - b)
                out[t] = column[b]! * (1 - w) + column[a]! * w
            case (let b?, nil): out[t] = column[b]!
            case (nil, let a?): out[t] = column[a]!
            default: break
            }
        }
        return out
    }
}

/// The data sets that ship inside the binaries.
public enum BuiltinSeries: String, CaseIterable, Sendable {
    /// Seeded synthetic series (two seasonal sines, a slow trend, noise): needs nothing to start.
    case synthetic
    /// Weekly CO2 at Mauna Loa, 1958–2001 (59 empty cells, interpolated).
    case co2
    /// Yearly sunspot numbers, 1700–2008.
    case sunspots

    /// The CSV text a built-in series is read from (with its time column), or nil for `synthetic`.
    public var csvText: String? {
        switch self {
        case .synthetic: return nil
        case .co2: return Self.text(PackageResources.co2_weekly_mauna_loa_csv)
        case .sunspots: return Self.text(PackageResources.sunspots_yearly_csv)
        }
    }

    /// A resource's bytes as text. The files are ASCII CSV checked in beside this source (the same files
    /// `data/` links to), so decoding cannot fail; a repair character would surface as a parse error.
    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Loads the series; `seed` only affects `synthetic`.
    public func load(seed: UInt64 = 0, length: Int = 3000) throws -> Series {
        switch self {
        case .synthetic:
            var state = seed &+ 0x2545_F491_4F6C_DD1D
            func uniform() -> Double {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Double(state >> 11) / Double(1 << 53)
            }
            let values = (0..<length).map { t -> [Double] in
                let x = Double(t)
                let noise = (uniform() + uniform() + uniform() - 1.5) * 0.2
                return [sin(x * 0.07) + 0.5 * sin(x * 0.013) + 0.0004 * x + noise]
            }
            return Series(name: "synthetic", columns: ["value"], values: values)
        case .co2:
            return try CSVSeries.parse(csvText!, source: "co2 (built-in)", columns: ["co2"])
        case .sunspots:
            return try CSVSeries.parse(csvText!, source: "sunspots (built-in)", columns: ["sunspots"])
        }
    }
}
