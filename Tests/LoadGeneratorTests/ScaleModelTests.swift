import Testing

@testable import LoadGenerator

@Suite("Scale model")
struct ScaleModelTests {
    let fit = CPUFit(fixedSeconds: 100e-6, secondsPerParameter: 1e-9)

    @Test("10 GbE carries 1448/1526 of 1.25 GB/s of payload each way")
    func payload() {
        #expect(abs(ScaleModel.payloadBytesPerSecond(gigabits: 10) - 1.25e9 * 1448 / 1526) < 1)
    }

    @Test("workers per server: the link gives payload × T / 4S, the CPU T / cpu(S)")
    func workersPerServer() {
        let w = ScaleModel.workersPerServer(parameters: 1e6, stepSeconds: 1, gigabits: 10, fit: fit)
        #expect(w.network == Int((ScaleModel.payloadBytesPerSecond(gigabits: 10) / 4e6).rounded(.down)))
        #expect(w.cpu == 909)  // 1 s / 1.1 ms
    }

    @Test("servers for a job: the link needs ⌈W·4S / (payload·T)⌉, the CPU ⌈W·b·S / (T − W·a)⌉")
    func serversNeeded() throws {
        // 100 workers, 15M parameters, 1 s: 6 GB per step each way over 1.19 GB/s needs 6 servers by link;
        // CPU: 100 × 1 ns × 15M = 1.5 s over 1 s − 10 ms needs 2.
        let need = try #require(
            ScaleModel.serversNeeded(workers: 100, parameters: 15e6, stepSeconds: 1, gigabits: 10, fit: fit))
        #expect(need.byNetwork == 6)
        #expect(need.byCPU == 2)
        #expect(need.servers == 6)
    }

    @Test("no number of servers helps when the workers' fixed per-message CPU alone exceeds a step")
    func tooManyMessages() {
        #expect(
            ScaleModel.serversNeeded(workers: 1000, parameters: 1e3, stepSeconds: 0.05, gigabits: 100, fit: fit) == nil)
    }

    @Test("the fit recovers a known line from the busiest async one-server row of each size")
    func fitFromRows() throws {
        func row(_ p: Int, _ u: Double, _ cpuMS: Double, n: Int) -> [String: String] {
            [
                "mode": "async", "servers": "1", "server_parameters": "\(p)", "updates_per_s": "\(u)",
                "cpu_ms_per_update": "\(cpuMS)", "workers": "\(n)",
            ]
        }
        let rows = [
            row(1_000, 900, 0.101, n: 4), row(1_000, 100, 5, n: 1),  // the slower row is left out
            row(1_000_000, 500, 1.1, n: 4), row(10_000_000, 80, 10.1, n: 4),
            [
                "mode": "sync", "servers": "1", "server_parameters": "5", "updates_per_s": "1e9",
                "cpu_ms_per_update": "0", "workers": "4",
            ],
        ]
        let f = try CPUFit(rows: rows)
        #expect(f.points.count == 3)
        #expect(abs(f.fixedSeconds - 100e-6) < 1e-9)
        #expect(abs(f.secondsPerParameter - 1e-9) < 1e-13)
    }
}
