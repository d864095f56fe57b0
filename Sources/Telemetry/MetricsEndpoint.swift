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

/// Why the metrics endpoint could not start.
public enum MetricsEndpointError: Error, CustomStringConvertible, Equatable {
    /// `--metrics-port` is held by another process: an error at start (exit 64), not a process that runs
    /// on without `/healthz` while its liveness probe fails.
    case portTaken(port: Int, address: String)
    case cannotServe(port: Int, address: String, reason: String)

    public var description: String {
        switch self {
        case .portTaken(let p, let a):
            return "--metrics-port \(p): the port is already in use on \(a); choose a free port"
        case .cannotServe(let p, let a, let r): return "--metrics-port \(p) on \(a): \(r)"
        }
    }
}

/// The HTTP side of a process: `/metrics` (Prometheus text format), `/healthz` (liveness: the process
/// answers) and `/readyz` (readiness), served by `HTTPServer` on a thread of its own with bounded limits, so
/// that neither the training loop nor a hostile client can starve the other.
public final class MetricsEndpoint: @unchecked Sendable {
    public let server: HTTPServer

    /// Starts serving on `bind:port`; the port is bound when this returns.
    /// - Parameter token: when given, `/metrics` needs `Authorization: Bearer <token>` (health stays open
    ///   for probes).
    /// - Throws: `MetricsEndpointError.portTaken` when the port is in use, `.cannotServe` otherwise.
    public init(
        bind: String, port: Int, registry: PrometheusCollectorRegistry, readiness: Readiness, logger: Logger,
        token: String? = nil, limits: HTTPLimits = HTTPLimits()
    ) throws {
        do {
            server = try HTTPServer(address: bind, port: port, limits: limits) { request in
                MetricsEndpoint.respond(request, registry: registry, readiness: readiness, token: token)
            }
        } catch HTTPServerError.portTaken {
            throw MetricsEndpointError.portTaken(port: port, address: bind)
        } catch {
            throw MetricsEndpointError.cannotServe(port: port, address: bind, reason: "\(error)")
        }
    }

    /// The three routes; anything else is 404, and a method other than GET on them 405.
    static func respond(
        _ request: HTTPRequest, registry: PrometheusCollectorRegistry, readiness: Readiness, token: String?
    ) -> HTTPResponse {
        switch request.path {
        case "/metrics", "/healthz", "/readyz":
            guard request.method == "GET" else {
                return HTTPResponse(
                    status: 405, body: Array("only GET is served on \(request.path)\n".utf8),
                    headers: [("Allow", "GET")])
            }
        default:
            return HTTPResponse(status: 404, text: "no such endpoint: \(request.path)\n")
        }
        switch request.path {
        case "/metrics":
            if let token, !bearerMatches(request.header("authorization"), token) {
                return HTTPResponse(
                    status: 401, body: Array("/metrics needs Authorization: Bearer <token>\n".utf8),
                    headers: [("WWW-Authenticate", "Bearer")])
            }
            return HTTPResponse(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer())
        case "/healthz":
            return HTTPResponse(status: 200, text: "ok\n")
        default:
            return readiness.isReady
                ? HTTPResponse(status: 200, text: "ready\n") : HTTPResponse(status: 503, text: "not ready\n")
        }
    }

    public func stop() { server.stop() }
}

/// Whether an `Authorization` header carries `Bearer <token>`; compared in time independent of where the
/// first difference is.
func bearerMatches(_ header: String?, _ token: String) -> Bool {
    guard let header, header.hasPrefix("Bearer ") else { return false }
    let given = Array(header.dropFirst(7).utf8)
    let wanted = Array(token.utf8)
    var diff = given.count == wanted.count ? 0 : 1
    for i in 0..<min(given.count, wanted.count) { diff |= Int(given[i] ^ wanted[i]) }
    return diff == 0
}
