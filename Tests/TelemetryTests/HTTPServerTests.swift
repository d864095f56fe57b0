import Foundation
import Logging
import Testing

@testable import Telemetry

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback client with bounded waits (every send and receive gives up after `seconds`).
final class TestClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int, seconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; false when the connection failed (closed or reset by the server).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads until the server closes or a whole response with its Content-Length arrived (1 MiB at most).
    func readResponse() -> String {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
            let text = String(decoding: data, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                if let cl = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let n = Int(cl.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                    text.utf8.count - text[..<end.upperBound].utf8.count >= n
                {
                    break
                }
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    func get(_ path: String) -> String {
        send(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        return readResponse()
    }
}

@Suite("HTTP server limits", .serialized)
struct HTTPServerTests {
    static func parseAll(_ text: String, limits: HTTPLimits = HTTPLimits(), chunk: Int = 7) -> (
        RequestParser.Outcome, HTTPRequest?
    ) {
        var p = RequestParser(limits: limits)
        var buffer: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        var outcome = RequestParser.Outcome.needMore
        while i < bytes.count {
            buffer.append(contentsOf: bytes[i..<min(bytes.count, i + chunk)])
            i += chunk
            outcome = p.parse(&buffer)
            if outcome != .needMore { break }
        }
        return (outcome, outcome == .complete ? p.request : nil)
    }

    @Test("a request fed a few bytes at a time parses: method, path, query, headers, body")
    func parsesIncrementally() throws {
        let (o, r) = Self.parseAll("POST /v1/forecast?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        #expect(o == .complete)
        let req = try #require(r)
        #expect(req.method == "POST" && req.path == "/v1/forecast" && req.query == "x=1")
        #expect(req.header("host") == "a" && String(decoding: req.body, as: UTF8.self) == "hello" && req.keepAlive)
    }

    @Test("a header line over the limit is refused with 431 once the limit is passed, not at the line's end")
    func longHeaderLine() {
        var p = RequestParser(limits: HTTPLimits())
        var buffer = Array("GET / HTTP/1.1\r\nX-big: ".utf8)
        var outcome = p.parse(&buffer)
        var fed = 0
        while outcome == .needMore && fed < 3_000_000 {
            buffer.append(contentsOf: [UInt8](repeating: 0x61, count: 1024))
            fed += 1024
            outcome = p.parse(&buffer)
        }
        #expect(outcome == .failure(status: 431, reason: "header line longer than 8192 bytes"))
        #expect(fed <= 8192 + 1024, "refused after \(fed) bytes")
    }

    @Test(
        "the grammar and every limit give a named 4xx or 5xx",
        arguments: [
            ("GET / HTTP/1.1\r\n" + String(repeating: "A: b\r\n", count: 65) + "\r\n", 431),
            ("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n", 414),
            ("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (
                "GET / HTTP/1.1\r\n"
                    + String(repeating: "A: " + String(repeating: "b", count: 1000) + "\r\n", count: 20) + "\r\n", 431
            ),
        ])
    func limits(_ text: String, _ status: Int) {
        let (o, _) = Self.parseAll(text, chunk: 100)
        guard case .failure(let s, _) = o else {
            Issue.record("\(text.prefix(40)) parsed as \(o)")
            return
        }
        #expect(s == status)
    }

    @Test("a port already in use is an error at start naming the port")
    func portTaken() throws {
        let first = try HTTPServer(address: "127.0.0.1", port: 0) { _ in HTTPResponse(status: 200, text: "") }
        defer { first.stop() }
        #expect(throws: HTTPServerError.portTaken(address: "127.0.0.1", port: first.port)) {
            _ = try HTTPServer(address: "127.0.0.1", port: first.port) { _ in HTTPResponse(status: 200, text: "") }
        }
        let registry = Telemetry.bootstrap()
        do {
            _ = try MetricsEndpoint(
                bind: "127.0.0.1", port: first.port, registry: registry, readiness: Readiness(),
                logger: Logger(label: "t"))
            Issue.record("a second endpoint bound a taken port")
        } catch let e as MetricsEndpointError {
            #expect(e == .portTaken(port: first.port, address: "127.0.0.1"))
            #expect("\(e)".contains("--metrics-port \(first.port)"))
        }
    }

    @Test("/healthz, /readyz and /metrics answer; other paths 404, other methods 405; keep-alive serves several")
    func routes() throws {
        let readiness = Readiness()
        let endpoint = try MetricsEndpoint(
            bind: "127.0.0.1", port: 0, registry: Telemetry.bootstrap(), readiness: readiness,
            logger: Logger(label: "t"))
        defer { endpoint.stop() }
        let c = try TestClient(port: endpoint.server.port)
        #expect(c.get("/healthz").hasPrefix("HTTP/1.1 200"))
        #expect(c.get("/readyz").hasPrefix("HTTP/1.1 503"))
        readiness.set(true)
        #expect(c.get("/readyz").hasPrefix("HTTP/1.1 200"))
        #expect(c.get("/metrics").hasPrefix("HTTP/1.1 200"))
        #expect(c.get("/nothing").hasPrefix("HTTP/1.1 404"))
        c.send(Array("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8))
        #expect(c.readResponse().hasPrefix("HTTP/1.1 405"))
        #expect(endpoint.server.stats.accepted == 1)
    }

    @Test("with a token, /metrics needs it and health stays open")
    func token() throws {
        let endpoint = try MetricsEndpoint(
            bind: "127.0.0.1", port: 0, registry: Telemetry.bootstrap(), readiness: Readiness(),
            logger: Logger(label: "t"),
            token: "s3cret")
        defer { endpoint.stop() }
        let c = try TestClient(port: endpoint.server.port)
        #expect(c.get("/metrics").hasPrefix("HTTP/1.1 401"))
        #expect(c.get("/healthz").hasPrefix("HTTP/1.1 200"))
        c.send(Array("GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n".utf8))
        #expect(c.readResponse().hasPrefix("HTTP/1.1 200"))
        c.send(Array("GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3creT\r\n\r\n".utf8))
        #expect(c.readResponse().hasPrefix("HTTP/1.1 401"))
    }

    @Test("four connections streaming 3 MB header lines are each cut off while /healthz keeps answering")
    func headerFlood() throws {
        let endpoint = try MetricsEndpoint(
            bind: "127.0.0.1", port: 0, registry: Telemetry.bootstrap(), readiness: Readiness(),
            logger: Logger(label: "t"))
        defer { endpoint.stop() }
        let port = endpoint.server.port
        let floods = try (0..<4).map { _ in try TestClient(port: port) }
        let group = DispatchGroup()
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var cutOff = 0
            var sentBeforeCut: [Int] = []
        }
        let results = Results()
        let opened = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        for f in floods {
            let thread = Thread {
                // Open mid-header first, so that health is asked while all four are held.
                f.send(Array("GET /metrics HTTP/1.1\r\nX-big: ".utf8) + [UInt8](repeating: 0x61, count: 6000))
                opened.signal()
                _ = release.wait(timeout: .now() + 30)
                let chunk = [UInt8](repeating: 0x61, count: 16 * 1024)
                var sent = 0
                var failed = false
                while sent < 3_000_000 {
                    if !f.send(chunk) {
                        failed = true
                        break
                    }
                    sent += chunk.count
                }
                // Either a send failed (the server reset the connection) or the server's answer is waiting.
                let answer = failed ? "" : f.readResponse()
                results.lock.lock()
                if failed || answer.hasPrefix("HTTP/1.1 431") || answer.isEmpty { results.cutOff += 1 }
                results.sentBeforeCut.append(sent)
                results.lock.unlock()
                group.leave()
            }
            group.enter()
            thread.start()
        }
        // While the floods run: health answers, each on a fresh connection.
        for _ in 0..<4 { #expect(opened.wait(timeout: .now() + 30) == .success) }
        var healthy = 0
        for i in 0..<20 {
            if i == 10 { for _ in 0..<4 { release.signal() } }
            let c = try TestClient(port: port)
            if c.get("/healthz").hasPrefix("HTTP/1.1 200") { healthy += 1 }
        }
        #expect(healthy == 20)
        #expect(group.wait(timeout: .now() + 60) == .success, "the flood threads did not finish")
        #expect(results.cutOff == 4, "sent before the cut: \(results.sentBeforeCut)")
        #expect(endpoint.server.stats.rejected >= 4)
        let after = try TestClient(port: port)
        #expect(after.get("/healthz").hasPrefix("HTTP/1.1 200"))
    }

    @Test("connections past the limit are closed at once; the ones held still answer")
    func connectionLimit() throws {
        var limits = HTTPLimits()
        limits.maxConnections = 4
        let server = try HTTPServer(address: "127.0.0.1", port: 0, limits: limits) { _ in
            HTTPResponse(status: 200, text: "ok")
        }
        defer { server.stop() }
        let held = try (0..<4).map { _ in try TestClient(port: server.port) }
        #expect(held[0].get("/").hasPrefix("HTTP/1.1 200"))  // the server has taken the first ones
        // Wait (bounded) until the server has accepted all four.
        for _ in 0..<500 where server.stats.accepted < 4 { usleep(10_000) }
        let extra = try TestClient(port: server.port)
        #expect(extra.get("/") == "")  // closed without an answer
        #expect(server.stats.refused >= 1)
        #expect(held[3].get("/").hasPrefix("HTTP/1.1 200"))
    }

    @Test("a client that sends half a request and stops is answered 408 and closed after the read timeout")
    func slowClient() throws {
        var limits = HTTPLimits()
        limits.readTimeout = 0.3
        limits.idleTimeout = 0.3
        let server = try HTTPServer(address: "127.0.0.1", port: 0, limits: limits) { _ in
            HTTPResponse(status: 200, text: "ok")
        }
        defer { server.stop() }
        let c = try TestClient(port: server.port)
        c.send(Array("GET / HTTP/1.1\r\nHost".utf8))
        #expect(c.readResponse().hasPrefix("HTTP/1.1 408"))
        let idle = try TestClient(port: server.port)
        #expect(idle.readResponse() == "")  // an idle connection is closed without a word
        #expect(server.stats.timedOut >= 2)
    }

    @Test("offloaded requests run on handler threads while the I/O thread answers others")
    func offload() throws {
        let gate = DispatchSemaphore(value: 0)
        let server = try HTTPServer(
            address: "127.0.0.1", port: 0, handlerThreads: 1, offload: { $0.path == "/slow" }
        ) { r in
            if r.path == "/slow" { _ = gate.wait(timeout: .now() + 10) }
            return HTTPResponse(status: 200, text: r.path)
        }
        defer { server.stop() }
        let slow = try TestClient(port: server.port)
        slow.send(Array("GET /slow HTTP/1.1\r\n\r\n".utf8))
        let fast = try TestClient(port: server.port)
        #expect(fast.get("/fast").hasSuffix("/fast"))  // answered while /slow is held
        gate.signal()
        #expect(slow.readResponse().hasSuffix("/slow"))
    }
}
