import Foundation

/// The time of each row of a series, and of the rows after its end: ISO dates continued at the step
/// detected in the data (daily, weekly, any whole number of days, monthly, quarterly, yearly), integer
/// years, or 1-based step numbers when the data has no time column.
public struct TimeAxis: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        case days(Int)
        case months(Int)
    }

    public enum Kind: Sendable, Equatable {
        case dates(last: Date, step: Step)
        case integers(last: Int, step: Int)
        case steps
    }

    public let kind: Kind
    /// The column's name ("step" when numbering).
    public let name: String
    /// The cells as read, one per row.
    public let cells: [String]

    /// Numbered steps for `rows` rows.
    public static func steps(_ rows: Int) -> TimeAxis {
        TimeAxis(kind: .steps, name: "step", cells: (1...max(rows, 1)).map(String.init))
    }

    /// The label of 0-based row `row`, which may lie past the last row. A label the time column cannot
    /// continue to (an integer past `Int.max`, a date past the calendar's range) falls back to the 1-based
    /// step number, as for data without a time column: the time column is the user's, any integers at all.
    public func label(_ row: Int) -> String {
        if row < cells.count { return cells[row] }
        let ahead = row - (cells.count - 1)
        let fallback = String(row == Int.max ? row : row + 1)
        switch kind {
        case .steps: return fallback
        case .integers(let last, let step):
            let (offset, o1) = ahead.multipliedReportingOverflow(by: step)
            let (value, o2) = last.addingReportingOverflow(offset)
            return o1 || o2 ? fallback : String(value)
        case .dates(let last, let step):
            var cal = Calendar(identifier: .gregorian)
            cal.timeZone = TimeZone(identifier: "UTC")!
            let unit: Calendar.Component
            let (count, overflow): (Int, Bool)
            switch step {
            case .days(let d): (unit, (count, overflow)) = (.day, d.multipliedReportingOverflow(by: ahead))
            case .months(let m): (unit, (count, overflow)) = (.month, m.multipliedReportingOverflow(by: ahead))
            }
            guard !overflow, abs(count) < 10_000_000 else { return fallback }
            return cal.date(byAdding: unit, value: count, to: last).map(Self.format) ?? fallback
        }
    }

    /// The 0-based row whose cell is `text`, if any.
    public func row(of text: String) -> Int? { cells.firstIndex(of: text) }

    static func parseDate(_ s: String) -> Date? {
        let parts = s.prefix(10).split(separator: "-")
        guard s.count >= 10, parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            (1...9999).contains(y), (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(from: DateComponents(year: y, month: m, day: d))
    }

    static func format(_ date: Date) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }

    /// The most common of `values` (the smallest among ties).
    static func mode(_ values: [Int]) -> Int? {
        var counts: [Int: Int] = [:]
        for v in values { counts[v, default: 0] += 1 }
        return counts.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key
    }

    /// Builds the axis from a column's cells: dates when every cell of the last 60 is an ISO date, integers
    /// when every one is an integer (years), else numbered steps.
    public static func detect(name: String, cells: [String]) -> TimeAxis {
        let tail = Array(cells.suffix(60))
        guard tail.count >= 2 else { return TimeAxis(kind: .steps, name: name, cells: cells) }
        let dates = tail.map(parseDate)
        if dates.allSatisfy({ $0 != nil }), let last = dates.last! {
            let days = zip(dates.dropFirst(), dates).map { Int((($0!.timeIntervalSince($1!)) / 86_400).rounded()) }
            if let d = mode(days), d > 0 {
                let step: Step
                switch d {
                case 28...31: step = .months(1)
                case 89...92: step = .months(3)
                case 181...184: step = .months(6)
                case 365...366: step = .months(12)
                default: step = .days(d)
                }
                return TimeAxis(kind: .dates(last: last, step: step), name: name, cells: cells)
            }
        }
        // Integers (years, or any counter): steps that overflow `Int` are not a time axis.
        let ints = tail.compactMap { Int($0) }
        if ints.count == tail.count, let last = ints.last {
            let steps = zip(ints.dropFirst(), ints).map { $0.subtractingReportingOverflow($1) }
            if !steps.contains(where: \.overflow), let d = mode(steps.map(\.partialValue)), d > 0 {
                return TimeAxis(kind: .integers(last: last, step: d), name: name, cells: cells)
            }
        }
        return TimeAxis(kind: .steps, name: "step", cells: (1...cells.count).map(String.init))
    }

    /// Reads the time column of CSV `text`: `column` when given, otherwise the first column (not among
    /// `dataColumns`) named like a time (date, time, year, ds, timestamp, month, week, day) or whose last cell
    /// is an ISO date. Rows are the lines after the header, as `CSVSeries.parse` counts them.
    /// - Throws: `ForecastError.badValue` when `column` is not in the header, is a data column, or holds no
    ///   time (neither dates nor increasing integers).
    public static func read(csv text: String, column: String?, dataColumns: [String]) throws -> TimeAxis? {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let header = lines.first else { return nil }
        let names = header.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let rows = lines.dropFirst().map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let cells = { (i: Int) in rows.map { i < $0.count ? $0[i] : "" } }
        if let column {
            guard let i = names.firstIndex(of: column) else {
                throw ForecastError.badValue(
                    "--time-column \(column) is not a column of the data; its columns are: \(names.joined(separator: ", "))"
                )
            }
            guard !dataColumns.contains(column) else {
                throw ForecastError.badValue(
                    "--time-column \(column) is a column being forecast, not a time axis; name the column of dates or years, or leave --time-column out"
                )
            }
            let axis = detect(name: names[i], cells: cells(i))
            // Named on purpose: a column that is neither dates nor increasing integers must not quietly become
            // step numbers.
            guard axis.kind != .steps else {
                throw ForecastError.badValue(
                    "--time-column \(column) holds neither ISO dates (YYYY-MM-DD) nor increasing integers in its last 60 rows; name the column of dates or years, or leave --time-column out"
                )
            }
            return axis
        } else {
            let timeNames: Set<String> = [
                "date", "time", "year", "ds", "timestamp", "month", "week", "day", "datetime",
            ]
            let candidates = names.indices.filter { !dataColumns.contains(names[$0]) }
            guard
                let i = candidates.first(where: { timeNames.contains(names[$0].lowercased()) })
                    ?? candidates.first(where: { i in rows.last.map { i < $0.count && parseDate($0[i]) != nil } ?? false
                        })
            else { return nil }
            return detect(name: names[i], cells: cells(i))
        }
    }
}
