import FlyingFox
import Foundation
import Logging
import Metrics
import Prometheus

/// The process's metrics registry: swift-metrics' API, rendered in Prometheus' text format.
public enum Telemetry {
    /// Bootstraps swift-metrics with a Prometheus registry and returns the registry; later calls return the
    /// same one (swift-metrics may be bootstrapped once per process).
    public static func bootstrap() -> PrometheusCollectorRegistry { shared }

    private static let shared: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.defaultValueHistogramBuckets = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]
        MetricsSystem.bootstrap(factory)
        return registry
    }()
}

/// Whether a process is ready for traffic (a server: listening and restored; a worker: registered).
public final class Readiness: @unchecked Sendable {
    private let lock = NSLock()
    private var ready = false
    public init() {}
    public func set(_ value: Bool) {
        lock.lock()
        ready = value
        lock.unlock()
    }
    public var isReady: Bool {
        lock.lock()
        defer { lock.unlock() }
        return ready
    }
}

/// The HTTP side of a process: `/metrics` (Prometheus text format), `/healthz` (liveness: the process
/// answers) and `/readyz` (readiness). FlyingFox serves it on its own task, apart from the training loop.
public final class MetricsEndpoint: @unchecked Sendable {
    let server: HTTPServer
    let task: Task<Void, Error>

    /// Starts serving on `bind:port`.
    /// - Throws: when the address is not an IPv4 address.
    public init(bind: String, port: Int, registry: PrometheusCollectorRegistry, readiness: Readiness, logger: Logger) throws {
        let address = try sockaddr_in.inet(ip4: bind == "localhost" ? "127.0.0.1" : bind, port: UInt16(port))
        server = HTTPServer(address: address, logger: .disabled)
        let server = self.server
        // The endpoint runs on a queue of its own, not on Swift's shared pool: a process (or a test run)
        // that keeps the pool's threads busy must not starve its health checks.
        task = Task.detached(executorPreference: QueueExecutor.shared) {
            await server.appendRoute("GET /metrics") { _ in
                HTTPResponse(
                    statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: Data(registry.emitToBuffer()))
            }
            await server.appendRoute("GET /healthz") { _ in HTTPResponse(statusCode: .ok, body: Data("ok\n".utf8)) }
            await server.appendRoute("GET /readyz") { _ in
                readiness.isReady
                    ? HTTPResponse(statusCode: .ok, body: Data("ready\n".utf8))
                    : HTTPResponse(statusCode: .serviceUnavailable, body: Data("not ready\n".utf8))
            }
            do {
                try await server.run()
            } catch is CancellationError {
            } catch {
                logger.error("the metrics endpoint stopped", metadata: ["error": "\(error)", "port": "\(port)"])
            }
        }
    }

    /// Waits (bounded) until the endpoint listens.
    public func waitUntilListening(seconds: Double = 5) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await server.listeningAddress != nil { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return false
    }

    public func stop() { task.cancel() }
}

/// A task executor on one serial dispatch queue, apart from the cooperative pool.
final class QueueExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = QueueExecutor()
    let queue = DispatchQueue(label: "metrics-endpoint")

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { unowned.runSynchronously(on: executor) }
    }
}
