import Datasets
import Foundation
import Logging
import SafeTensors
import Testing
import Training

@testable import Forecasting
@testable import Telemetry

/// A keep-alive HTTP client on loopback with bounded waits.
final class Client {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 30, tv_usec: 0)
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
        guard r == 0 else { throw POSIXError(.ECONNREFUSED) }
    }
    deinit { close(fd) }

    /// Sends a request and returns (status, body); status 0 when the connection closed without an answer.
    func request(_ method: String, _ path: String, body: [UInt8] = [], headers: String = "") -> (Int, String) {
        let head = "\(method) \(path) HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\(headers)\r\n"
        let bytes = Array(head.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count < 64 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
            let text = String(decoding: data, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n"),
                let cl = text[..<end.lowerBound].lowercased().split(separator: "\r\n").first(where: {
                    $0.hasPrefix("content-length:")
                }),
                let length = Int(cl.dropFirst(15).trimmingCharacters(in: .whitespaces)),
                text.utf8.count - text[..<end.upperBound].utf8.count >= length
            {
                let status = Int(text.split(separator: " ")[1]) ?? 0
                return (status, String(text[end.upperBound...]))
            }
        }
        return (0, "")
    }
}

@Suite("Serving", .serialized)
struct ServingTests {
    static func body(_ windows: [[Double]], levels: [Int]? = nil) -> [UInt8] {
        var o: [String: Any] = ["windows": windows]
        if let levels { o["levels"] = levels }
        return Array(try! JSONSerialization.data(withJSONObject: o))
    }

    @Test("POST /v1/forecast answers what forecast computes, with intervals; malformed input gets a clear 4xx")
    func api() throws {
        let dir = try TempDir()
        let series = try BuiltinSeries.sunspots.load()
        let path = try Fixture.modelFile(series, scaling: .relative, in: dir.path)
        let model = try ForecastModel.load(modelFile: path)
        var options = ForecastServer.Options(source: .file(path))
        options.port = 0
        options.limits.maxBodyBytes = 4096
        let server = try ForecastServer(options, logger: Logger(label: "t"))
        defer { server.stop() }
        let c = try Client(port: server.port)
        let windows = [Array(series.values[0..<6].map { $0[0] }), Array(series.values[100..<106].map { $0[0] })]
        let (status, text) = c.request(
            "POST", "/v1/forecast", body: Self.body(windows, levels: [80]),
            headers: "Content-Type: application/json\r\n")
        #expect(status == 200, "\(text)")
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let items = try #require(answer["forecasts"] as? [[String: Any]])
        let want = try model.forecast(windows.map { $0.map { [$0] } })
        for (item, w) in zip(items, want) {
            let values = try #require(item["values"] as? [Double])
            #expect(zip(values, w).allSatisfy { abs($0 - $1) < 1e-9 })
            let lo = try #require(item["lo_80"] as? [Double])
            let hi = try #require(item["hi_80"] as? [Double])
            #expect(zip(lo, hi).allSatisfy { $0 < $1 })
        }
        #expect(c.request("POST", "/v1/forecast", body: Array("{not json".utf8)).0 == 400)
        #expect(c.request("POST", "/v1/forecast", body: Self.body([[1, 2, 3]])).0 == 422)
        #expect(c.request("POST", "/v1/forecast", body: Array(#"{"windows": [[1,2,3,4,5,"x"]]}"#.utf8)).0 == 422)
        #expect(c.request("POST", "/v1/forecast", body: Array(#"{"windows": [[1,2,3,4,5,true]]}"#.utf8)).0 == 422)
        #expect(c.request("POST", "/v1/forecast", body: Array(#"{"windows": [[0,0.0,3,4,5,6]]}"#.utf8)).0 == 200)
        #expect(c.request("POST", "/v1/forecast", body: Self.body(windows, levels: [99])).0 == 422)
        #expect(c.request("GET", "/v1/forecast").0 == 405)
        #expect(
            c.request("POST", "/v1/forecast", body: Self.body(windows), headers: "Content-Type: text/plain\r\n").0
                == 415)
        #expect(c.request("GET", "/healthz").0 == 200 && c.request("GET", "/readyz").0 == 200)
        let (metricsStatus, metrics) = c.request("GET", "/metrics")
        #expect(
            metricsStatus == 200 && metrics.contains("forecast_request_seconds")
                && metrics.contains("forecast_requests_total"))
        let big = try Client(port: server.port)
        #expect(big.request("POST", "/v1/forecast", body: [UInt8](repeating: 0x20, count: 5000)).0 == 413)
    }

    /// Writes a server-style checkpoint (the variables of `model` and the metadata forecast reads).
    static func checkpoint(
        _ model: ForecastModel, dir: String, server: String, sequence: Int, updates: Int, scale: Float
    ) throws {
        let tensors = model.values.keys.sorted().map { name in
            (name: name, shape: model.values[name]!.shape, scalars: model.values[name]!.scalars.map { $0 * scale })
        }
        let path = "\(dir)/\(server)-\(String(format: "%08d", sequence)).safetensors"
        try writeReplacing(
            SafeTensors.encode(
                tensors,
                metadata: [
                    "server": server, "sequence": "\(sequence)", "updates": "\(updates)", "model": model.spec.json,
                ]),
            to: path)
    }

    @Test("serving from a checkpoint directory swaps in a newer complete set whole, and names it")
    func hotReload() throws {
        let dir = try TempDir()
        let ckpt = "\(dir.path)/ckpt"
        try FileManager.default.createDirectory(atPath: ckpt, withIntermediateDirectories: true)
        let series = try BuiltinSeries.sunspots.load()
        let model = try ForecastModel.load(modelFile: try Fixture.modelFile(series, scaling: .relative, in: dir.path))
        try Self.checkpoint(model, dir: ckpt, server: "ps-0", sequence: 1, updates: 10, scale: 1)
        var options = ForecastServer.Options(source: .checkpoints(ckpt))
        options.port = 0
        options.reloadSeconds = 0.05
        let server = try ForecastServer(options, logger: Logger(label: "t"))
        defer { server.stop() }
        let c = try Client(port: server.port)
        let window = [Array(series.values[200..<206].map { $0[0] })]
        let before = c.request("POST", "/v1/forecast", body: Self.body(window)).1
        #expect(before.contains("\"updates\":[10]"), "\(before)")
        try Self.checkpoint(model, dir: ckpt, server: "ps-0", sequence: 2, updates: 20, scale: 0.5)
        // Wait on the event (the reload), bounded.
        var after = ""
        for _ in 0..<600 {
            after = c.request("POST", "/v1/forecast", body: Self.body(window)).1
            if after.contains("\"updates\":[20]") { break }
            usleep(10_000)
        }
        #expect(after.contains("\"updates\":[20]") && after.contains("ps-0-00000002.safetensors"), "\(after)")
        #expect(
            after
                != before.replacingOccurrences(of: "[10]", with: "[20]").replacingOccurrences(
                    of: "00000001", with: "00000002"))
    }
}
