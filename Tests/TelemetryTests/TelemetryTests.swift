import Foundation
import Logging
import Metrics
import Testing

@testable import Telemetry

@Suite("Metrics endpoint", .serialized)
struct TelemetryTests {
    /// A plain HTTP/1.1 GET on loopback: (status, body).
    static func get(_ port: Int, _ path: String) throws -> (Int, String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return (0, "") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @Test("/metrics renders swift-metrics in Prometheus' format; /healthz answers; /readyz follows readiness")
    func endpoint() async throws {
        let registry = Telemetry.bootstrap()
        #expect(Telemetry.bootstrap() === registry)  // once per process
        let readiness = Readiness()
        let port = Self.freePort()
        let endpoint = try MetricsEndpoint(bind: "127.0.0.1", port: port, registry: registry, readiness: readiness, logger: Logger(label: "t"))
        defer { endpoint.stop() }
        #expect(await endpoint.waitUntilListening())
        Counter(label: "test_things_total").increment(by: 3)
        let (status, body) = try Self.get(port, "/metrics")
        #expect(status == 200)
        #expect(body.contains("test_things_total 3"), "\(body)")
        #expect(try Self.get(port, "/healthz").0 == 200)
        #expect(try Self.get(port, "/readyz").0 == 503)
        readiness.set(true)
        #expect(try Self.get(port, "/readyz").0 == 200)
        #expect(try Self.get(port, "/nothing").0 == 404)
    }
}
