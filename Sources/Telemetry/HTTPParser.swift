import Foundation

/// What an HTTP connection may cost, whatever its client sends. Each limit closes a way to make the
/// server spend memory or time without bound: a header line that never ends, headers without number, a
/// body larger than any valid request, a client that connects and then trickles or says nothing.
public struct HTTPLimits: Sendable, Equatable {
    /// The longest request line or header line, in bytes (without its line ending).
    public var maxLineBytes = 8 * 1024
    /// The most header lines one request may have.
    public var maxHeaderCount = 64
    /// The request line and all header lines together, in bytes.
    public var maxHeaderBytes = 16 * 1024
    /// The largest body (`Content-Length`) a request may carry.
    public var maxBodyBytes = 1 << 20
    /// Connections held at once; one more is accepted and closed at once.
    public var maxConnections = 256
    /// Seconds a kept-alive connection may stay silent between requests.
    public var idleTimeout = 10.0
    /// Seconds from a request's first byte to its last, and for a response to be taken by its reader.
    public var readTimeout = 10.0
    /// Requests that wait for a handler thread; more are answered 503.
    public var maxQueuedRequests = 64

    public init() {}

    /// What is wrong with these limits, or nil.
    public var problem: String? {
        if !(1...(1 << 20)).contains(maxLineBytes) { return "header line limit must be in 1...1048576 bytes" }
        if !(1...10_000).contains(maxHeaderCount) { return "header count limit must be in 1...10000" }
        if !(maxLineBytes...(16 << 20)).contains(maxHeaderBytes) {
            return "header size limit must be in line limit...16 MiB"
        }
        if !(0...(1 << 30)).contains(maxBodyBytes) { return "body limit must be in 0...1 GiB" }
        if !(1...65_536).contains(maxConnections) { return "connection limit must be in 1...65536" }
        if !(idleTimeout.isFinite && idleTimeout > 0 && idleTimeout <= 86_400) {
            return "idle timeout must be in (0, 86400] s"
        }
        if !(readTimeout.isFinite && readTimeout > 0 && readTimeout <= 86_400) {
            return "read timeout must be in (0, 86400] s"
        }
        if !(1...1_000_000).contains(maxQueuedRequests) { return "request queue limit must be in 1...1000000" }
        return nil
    }
}

/// One parsed HTTP/1.x request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path of the request target, without its query.
    public var path: String
    /// The query, without its `?`; empty when there is none.
    public var query: String
    /// Header names lowercased, in the order sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whether the client keeps the connection open after the response (HTTP/1.1 unless `Connection: close`).
    public var keepAlive: Bool

    public init(
        method: String, path: String, query: String = "", headers: [(name: String, value: String)] = [],
        body: [UInt8] = [], keepAlive: Bool = true
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// A response to write.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// Extra header lines (name, value); `Content-Length`, `Content-Type` and `Connection` are written by
    /// the server.
    public var headers: [(String, String)]

    public init(
        status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [(String, String)] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, text: String) {
        self.init(status: status, body: Array(text.utf8))
    }

    /// The reason phrase for the status codes this project writes.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }

    /// The bytes on the wire: status line, headers, blank line, body.
    func serialized(keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Type: \(contentType)\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: \(keepAlive ? "keep-alive" : "close")\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        out.reserveCapacity(out.count + body.count)
        out.append(contentsOf: body)
        return out
    }
}

/// An incremental HTTP/1.x request parser whose work is linear in the bytes it is given: each byte is
/// looked at once when searching for line ends (the search resumes where it stopped), and every limit is
/// checked as soon as it can be broken, before the bytes that would break it are kept. FlyingFox searched
/// the whole buffer again for every chunk read, quadratic in a header line's length.
///
/// Grammar followed: RFC 9112 (request line, header fields, `Content-Length` framing); a bare LF ends a line
/// as the RFC allows recipients to accept. Chunked bodies and obsolete line folding are refused.
struct RequestParser {
    enum Outcome: Equatable {
        /// More bytes are needed.
        case needMore
        /// A whole request is parsed; its bytes were removed from the front of the buffer.
        case complete
        /// The request breaks the grammar or a limit: answer with `status`, then close.
        case failure(status: Int, reason: String)
    }

    let limits: HTTPLimits
    /// Where the search for the next line end resumes.
    private var scan = 0
    /// Where the current line starts.
    private var lineStart = 0
    private var lines: [Range<Int>] = []
    /// Set once the blank line after the headers is seen: the index of the body's first byte.
    private var bodyStart: Int?
    private var head: HTTPRequest?
    private var contentLength = 0
    /// Whether the client asked for `100 Continue` before sending its body (and it was not sent yet).
    private(set) var wantsContinue = false
    /// The request parsed by the last `.complete`.
    private(set) var request: HTTPRequest?

    init(limits: HTTPLimits) { self.limits = limits }

    /// Whether any byte of a request has been taken (for the read timeout).
    var inRequest: Bool { scan > 0 || bodyStart != nil }

    /// Acknowledges that `100 Continue` was written.
    mutating func continueSent() { wantsContinue = false }

    /// Parses what `buffer` holds; on `.complete` the request's bytes are removed from its front and the
    /// parser is ready for the next request.
    mutating func parse(_ buffer: inout [UInt8]) -> Outcome {
        if bodyStart == nil {
            while scan < buffer.count {
                // Linear: each byte is examined once across calls.
                let end = buffer.count
                var i = scan
                while i < end && buffer[i] != 0x0A { i += 1 }
                if i == end {
                    scan = end
                    break
                }
                var lineEnd = i
                if lineEnd > lineStart && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                if lineEnd - lineStart > limits.maxLineBytes {
                    return lines.isEmpty
                        ? .failure(status: 414, reason: "request line longer than \(limits.maxLineBytes) bytes")
                        : .failure(status: 431, reason: "header line longer than \(limits.maxLineBytes) bytes")
                }
                scan = i + 1
                if lineEnd == lineStart {
                    if lines.isEmpty {
                        // RFC 9112 2.2: empty lines before the request line are ignored.
                        lineStart = scan
                        continue
                    }
                    bodyStart = scan
                    break
                }
                lines.append(lineStart..<lineEnd)
                lineStart = scan
                if lines.count > limits.maxHeaderCount + 1 {
                    return .failure(status: 431, reason: "more than \(limits.maxHeaderCount) header lines")
                }
            }
            if bodyStart == nil {
                // + 1: a CR that waits for its LF is not part of the line.
                if buffer.count - lineStart > limits.maxLineBytes + 1 {
                    return lines.isEmpty
                        ? .failure(status: 414, reason: "request line longer than \(limits.maxLineBytes) bytes")
                        : .failure(status: 431, reason: "header line longer than \(limits.maxLineBytes) bytes")
                }
                if min(scan, buffer.count) > limits.maxHeaderBytes || lineStart > limits.maxHeaderBytes {
                    return .failure(status: 431, reason: "headers larger than \(limits.maxHeaderBytes) bytes")
                }
                return .needMore
            }
            if bodyStart! > limits.maxHeaderBytes + 2 {
                return .failure(status: 431, reason: "headers larger than \(limits.maxHeaderBytes) bytes")
            }
            switch parseHead(buffer) {
            case .success(let h): head = h
            case .failure(let f): return .failure(status: f.status, reason: f.reason)
            }
        }
        guard let start = bodyStart, var h = head else { return .needMore }
        if buffer.count - start < contentLength { return .needMore }
        h.body = Array(buffer[start..<(start + contentLength)])
        buffer.removeFirst(start + contentLength)
        self = RequestParser(limits: limits)
        request = h
        return .complete
    }

    struct Failure: Error {
        let status: Int
        let reason: String
    }

    private mutating func parseHead(_ buffer: [UInt8]) -> Result<HTTPRequest, Failure> {
        let requestLine = String(decoding: buffer[lines[0]], as: UTF8.self)
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[0].utf8.allSatisfy({ isTokenByte($0) })
        else {
            return .failure(Failure(status: 400, reason: "malformed request line"))
        }
        let version = parts[2]
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .failure(Failure(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        let target = parts[1]
        let (path, query): (Substring, Substring)
        if let q = target.firstIndex(of: "?") {
            (path, query) = (target[..<q], target[target.index(after: q)...])
        } else {
            (path, query) = (target, "")
        }
        var headers: [(name: String, value: String)] = []
        var length: Int?
        var keepAlive = version == "HTTP/1.1"
        for range in lines.dropFirst() {
            let bytes = buffer[range]
            guard let first = bytes.first, first != 0x20, first != 0x09 else {
                return .failure(Failure(status: 400, reason: "obsolete line folding is not accepted"))
            }
            guard let colon = bytes.firstIndex(of: 0x3A), colon > bytes.startIndex,
                buffer[bytes.startIndex..<colon].allSatisfy({ isTokenByte($0) })
            else {
                return .failure(Failure(status: 400, reason: "malformed header line"))
            }
            let name = String(decoding: buffer[bytes.startIndex..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: buffer[(colon + 1)..<bytes.endIndex], as: UTF8.self)
                .trimmingCharacters(in: [" ", "\t"])
            switch name {
            case "content-length":
                guard !value.isEmpty, value.utf8.count <= 12, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    let n = Int(value)
                else {
                    return .failure(Failure(status: 400, reason: "Content-Length is not a decimal number"))
                }
                if let length, length != n {
                    return .failure(Failure(status: 400, reason: "two different Content-Length values"))
                }
                guard n <= limits.maxBodyBytes else {
                    return .failure(
                        Failure(status: 413, reason: "body of \(n) bytes exceeds the limit of \(limits.maxBodyBytes)"))
                }
                length = n
            case "transfer-encoding":
                return .failure(Failure(status: 501, reason: "Transfer-Encoding is not accepted: send Content-Length"))
            case "connection":
                let v = value.lowercased()
                if v.contains("close") { keepAlive = false } else if v.contains("keep-alive") { keepAlive = true }
            case "expect":
                if value.lowercased() == "100-continue" { wantsContinue = true }
            default: break
            }
            headers.append((name, value))
        }
        contentLength = length ?? 0
        if contentLength == 0 { wantsContinue = false }
        return .success(
            HTTPRequest(
                method: String(parts[0]), path: String(path), query: String(query), headers: headers,
                keepAlive: keepAlive))
    }
}

/// RFC 9110 5.6.2 `tchar`.
@inline(__always)
func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
        UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
        UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default: return false
    }
}
