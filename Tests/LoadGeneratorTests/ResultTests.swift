import Testing
import Wire

@testable import LoadGenerator

@Suite("Results and CSV")
struct ResultTests {
    func result(mode: SyncMode, workers: Int, steps: Int) throws -> LoadResult {
        LoadResult(
            mode: mode, model: try LoadModel(hidden: 64), workers: workers, servers: 1, window: 2, steps: steps,
            latencies: (1...100).map { Double($0) / 1000 }, serverParameters: [58_240], serverCPU: [1.0],
            serverMemory: [(rss: 50_000_000, peak: 60_000_000)], clientCPU: 0.5, machineBusy: 3, bytesPerStep: 466_000,
            cores: 2)
    }

    func row(_ r: LoadResult, triad: Double? = 1e10) throws -> [String: String] {
        let rows = try CSVTable.parse(([LoadResult.csvHeader] + r.csvRows(triad: triad)).joined(separator: "\n"))
        return try #require(rows.first)
    }

    @Test("nearest-rank quantiles: p50 of 1...100 is 50, p99 is 99, p100 is 100")
    func quantiles() {
        let v = (1...100).map(Double.init)
        #expect(LoadResult.quantile(v, 0.5) == 50)
        #expect(LoadResult.quantile(v, 0.99) == 99)
        #expect(LoadResult.quantile(v, 1) == 100)
        #expect(LoadResult.quantile([], 0.5) == nil)
    }

    @Test("every row has a cell for every column")
    func columns() throws {
        let r = try result(mode: .async, workers: 4, steps: 1000)
        for line in r.csvRows(triad: nil) {
            #expect(line.split(separator: ",", omittingEmptySubsequences: false).count == LoadResult.columns.count)
        }
    }

    @Test("async: every push is an update; CPU per update, gradient bytes and the Adam fraction follow from them")
    func asyncRow() throws {
        let r = try row(try result(mode: .async, workers: 4, steps: 1000))
        #expect(r["updates"] == "1000.0")
        #expect(r["updates_per_s"] == "500.0")
        #expect(r["cpu_ms_per_update"] == "1.0000")
        #expect(r["grad_bytes_per_s"] == "\(500 * 58_240 * 4)")
        #expect(r["adam_bytes_per_s"] == "\(500 * 58_240 * 28)")
        #expect(r["apply_fraction"] == String(format: "%.4f", Double(500 * 58_240 * 28) / 1e10))
        #expect(r["push_p99_ms"] == "99.000")
        #expect(r["rss_mb"] == "50.0")
        #expect(r["step_ms"] == "8.000")
        // 3 busy seconds less 1.5 of ours over 2 s × 2 cores.
        #expect(r["other_cpu_util"] == "0.375")
    }

    @Test("sync: N pushes make one averaged update; CPU is given per push and per update")
    func syncRow() throws {
        let r = try row(try result(mode: .sync, workers: 4, steps: 1000))
        #expect(r["pushes"] == "1000")
        #expect(r["updates"] == "250.0")
        #expect(r["cpu_ms_per_push"] == "1.0000")
        #expect(r["cpu_ms_per_update"] == "4.0000")
    }
}
