import Foundation

/// A results CSV read back: one dictionary per row, keyed by column.
public enum CSVTable {
    /// - Throws: `LoadError.file` when the file cannot be read or has no header.
    public static func read(_ path: String) throws -> [[String: String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw LoadError.file(path: path, problem: "cannot read it")
        }
        return try parse(text, path: path)
    }

    /// Parses CSV text with a header line; `path` names it in errors. Repeated header lines are skipped.
    public static func parse(_ text: String, path: String = "CSV") throws -> [[String: String]] {
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else {
            throw LoadError.file(path: path, problem: "it is empty")
        }
        return lines.dropFirst().filter { $0 != lines[0] }.map { line in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            var row: [String: String] = [:]
            for (k, v) in zip(header, cells) { row[k] = v }
            return row
        }
    }
}

/// Server CPU per update as a line in the parameters it holds, cpu = fixed + perParameter × S, fitted by
/// least squares on relative error to the async one-server rows at each size's highest throughput (the
/// server at its busiest).
/// The fixed part is a message's cost whatever its size (decode, acknowledge, a pull's reply); the slope is
/// the optimizer's pass and the copies, per parameter.
public struct CPUFit: Sendable, Equatable {
    /// CPU seconds per update whatever its size (a message's cost), and per parameter.
    public var fixedSeconds: Double
    public var secondsPerParameter: Double
    /// The (parameters, CPU seconds per update) points fitted.
    public var points: [Point]

    /// One size's busiest point: its parameters, CPU seconds per update, updates/s and workers.
    public struct Point: Sendable, Equatable {
        public var parameters: Int
        public var cpuSeconds: Double
        public var updatesPerSecond: Double
        public var workers: Int
    }

    public init(fixedSeconds: Double, secondsPerParameter: Double, points: [Point] = []) {
        self.fixedSeconds = fixedSeconds
        self.secondsPerParameter = secondsPerParameter
        self.points = points
    }

    /// - Parameter label: fit the rows of this variant only (the `label` column; "" for the plain runs).
    /// - Throws: `LoadError.file` when fewer than two sizes have async one-server rows with CPU figures.
    public init(rows: [[String: String]], label: String = "") throws {
        var best: [Int: Point] = [:]
        for r in rows where r["mode"] == "async" && r["servers"] == "1" && (r["label"] ?? "") == label {
            guard let p = r["server_parameters"].flatMap(Int.init), let u = r["updates_per_s"].flatMap(Double.init),
                let c = r["cpu_ms_per_update"].flatMap(Double.init), let n = r["workers"].flatMap(Int.init), u > 0
            else { continue }
            if best[p].map({ u > $0.updatesPerSecond }) ?? true {
                best[p] = Point(parameters: p, cpuSeconds: c / 1000, updatesPerSecond: u, workers: n)
            }
        }
        let points = best.values.sorted { $0.parameters < $1.parameters }
        guard points.count >= 2 else {
            throw LoadError.file(
                path: "CSV", problem: "the scale model needs async one-server rows of at least two model sizes")
        }
        // Weighted by 1/y², so each size counts by its relative error: sizes 250 times apart would otherwise
        // leave the small ones (where the fixed part shows) to the largest's residual.
        let xs = points.map { Double($0.parameters) }
        let ys = points.map(\.cpuSeconds)
        let ws = ys.map { 1 / max($0 * $0, 1e-30) }
        let sw = ws.reduce(0, +)
        let mx = zip(ws, xs).reduce(0) { $0 + $1.0 * $1.1 } / sw
        let my = zip(ws, ys).reduce(0) { $0 + $1.0 * $1.1 } / sw
        var sxy = 0.0
        var sxx = 0.0
        for i in xs.indices {
            sxy += ws[i] * (xs[i] - mx) * (ys[i] - my)
            sxx += ws[i] * (xs[i] - mx) * (xs[i] - mx)
        }
        let slope = sxx > 0 ? sxy / sxx : 0
        self.init(fixedSeconds: max(0, my - slope * mx), secondsPerParameter: max(0, slope), points: points)
    }

    /// CPU seconds one update of `parameters` costs a server.
    public func cpuSeconds(parameters: Double) -> Double { fixedSeconds + secondsPerParameter * parameters }
}

/// How many workers a server carries, and how many servers a job needs, from the measured CPU per update and
/// the bytes every step moves (Li et al., OSDI 2014, size servers the same way: by link and by CPU).
///
/// Each step, every worker pushes 4 bytes per parameter a server holds and pulls as many back, so a server's
/// link carries N·4·S bytes each way per step time T, and its one applying thread spends N·cpu(S) seconds.
/// Partitioning over P servers divides S by P but not the number of messages: every worker still sends one
/// push and one pull to every server, so the fixed part of cpu(S) bounds workers per server whatever P is.
public enum ScaleModel {
    /// Ethernet, IP and TCP headers at a 1500-byte MTU leave about 94.9% of the line rate for payload.
    public static let payloadFraction = 1448.0 / 1526.0

    /// Bytes per second of payload one way on a link of `gigabits` Gb/s.
    public static func payloadBytesPerSecond(gigabits: Double) -> Double { gigabits * 1e9 / 8 * payloadFraction }

    /// Workers one server holding `parameters` carries at step time `stepSeconds`: (by its link, by its CPU).
    public static func workersPerServer(
        parameters: Double, stepSeconds: Double, gigabits: Double, fit: CPUFit
    ) -> (network: Int, cpu: Int) {
        let bytes = 4 * parameters
        let network = Int((payloadBytesPerSecond(gigabits: gigabits) * stepSeconds / bytes).rounded(.down))
        let cpu = Int((stepSeconds / fit.cpuSeconds(parameters: parameters)).rounded(.down))
        return (network, cpu)
    }

    /// Servers a job of `workers` workers needs for a model of `parameters` partitioned evenly over them, at
    /// step time `stepSeconds`: the least P whose link and CPU both keep up; nil when no P does (the fixed
    /// per-message CPU of `workers` pushes and pulls already exceeds a step).
    public static func serversNeeded(
        workers: Int, parameters: Double, stepSeconds: Double, gigabits: Double, fit: CPUFit
    ) -> (servers: Int, byNetwork: Int, byCPU: Int)? {
        let w = Double(workers)
        let byNetwork = Int(
            (w * 4 * parameters / (payloadBytesPerSecond(gigabits: gigabits) * stepSeconds)).rounded(.up))
        let room = stepSeconds - w * fit.fixedSeconds
        guard room > 0 else { return nil }
        let byCPU = Int((w * fit.secondsPerParameter * parameters / room).rounded(.up))
        return (max(1, byNetwork, byCPU), max(1, byNetwork), max(1, byCPU))
    }

    /// The README's table, in markdown: for each (parameters, step time) case, on 10, 25 and 100 GbE.
    public static func table(fit: CPUFit, cases: [(parameters: Int, stepSeconds: Double)], jobWorkers: Int) -> String {
        var out = String(
            format: "server CPU per update = %.1f µs + %.2f ns × parameters (least squares over %@)\n\n",
            fit.fixedSeconds * 1e6, fit.secondsPerParameter * 1e9,
            fit.points.map {
                String(format: "%d params: %.3f ms at N=%d", $0.parameters, $0.cpuSeconds * 1000, $0.workers)
            }
            .joined(separator: "; "))
        out +=
            "| model (parameters) | step time | link | workers per server, by link | by CPU | carried | servers for \(jobWorkers) workers (link, CPU) |\n"
        out += "| --- | --- | --- | --- | --- | --- | --- |\n"
        for (p, t) in cases {
            for g in [10.0, 25, 100] {
                let w = workersPerServer(parameters: Double(p), stepSeconds: t, gigabits: g, fit: fit)
                let need = serversNeeded(
                    workers: jobWorkers, parameters: Double(p), stepSeconds: t, gigabits: g, fit: fit)
                let needText =
                    need.map { "\($0.servers) (\($0.byNetwork), \($0.byCPU))" }
                    ?? "none: per-message CPU exceeds the step"
                out +=
                    "| \(p) | \(String(format: "%g", t * 1000)) ms | \(Int(g)) GbE | \(w.network) | \(w.cpu) | "
                    + "\(min(w.network, w.cpu)) | \(needText) |\n"
            }
        }
        return out
    }
}
