import Foundation
import Logging
import Metrics
import Testing

@testable import Telemetry

/// The registry and readiness in process; the HTTP side is exercised against real processes in
/// IntegrationTests' MetricsTests (an in-process server would share the test run's busy task pool).
@Suite("Metrics registry", .serialized)
struct TelemetryTests {
    @Test("swift-metrics counters, gauges and timers render in Prometheus' text format; one registry per process")
    func rendering() {
        let registry = Telemetry.bootstrap()
        #expect(Telemetry.bootstrap() === registry)  // swift-metrics may be bootstrapped once per process
        Counter(label: "test_things_total").increment(by: 3)
        Gauge(label: "test_level").record(2.5)
        Metrics.Timer(label: "test_wait_seconds").recordNanoseconds(3_000_000)
        let text = registry.emitToString()
        #expect(text.contains("# TYPE test_things_total counter") && text.contains("test_things_total 3"), "\(text)")
        #expect(text.contains("test_level 2.5"), "\(text)")
        #expect(text.contains("# TYPE test_wait_seconds histogram") && text.contains("test_wait_seconds_count 1"), "\(text)")
    }

    @Test("readiness starts false and follows what it is told")
    func readiness() {
        let r = Readiness()
        #expect(!r.isReady)
        r.set(true)
        #expect(r.isReady)
    }
}
