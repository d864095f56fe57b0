import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why an HTTP server could not start; each names the address and port.
public enum HTTPServerError: Error, CustomStringConvertible, Equatable {
    /// The address is not an IPv4 address (or `localhost`).
    case badAddress(String)
    /// Another process (or socket) holds the port.
    case portTaken(address: String, port: Int)
    /// Any other failure of socket, bind or listen, with its errno.
    case socket(call: String, address: String, port: Int, errno: Int32)
    case badLimits(String)

    public var description: String {
        switch self {
        case .badAddress(let a):
            return "HTTP address \(a) is not an IPv4 address: give one such as 127.0.0.1 or 0.0.0.0"
        case .portTaken(let a, let p):
            return "HTTP port \(p) on \(a) is already in use by another process: choose another port"
        case .socket(let call, let a, let p, let e):
            return "HTTP server on \(a):\(p): \(call) failed: \(String(cString: strerror(e))) (errno \(e))"
        case .badLimits(let s): return "HTTP limits: \(s)"
        }
    }
}

/// What the server did, for tests, metrics and the flood probe.
public struct HTTPServerStats: Sendable, Equatable {
    public var accepted = 0
    /// Connections closed at once because `maxConnections` were open.
    public var refused = 0
    /// Requests answered with a 4xx or 5xx by the server itself (a limit or the grammar broken).
    public var rejected = 0
    /// Connections closed for silence or slowness.
    public var timedOut = 0
    public var requests = 0
    public var open = 0
}

/// A small HTTP/1.1 server on POSIX sockets and `poll`, on a thread of its own (not Swift's cooperative pool,
/// not Dispatch's global queues), so that what clients send cannot take the threads training, signal
/// handling or health checks need. Every connection's cost is bounded by `HTTPLimits`; parsing is linear.
///
/// Requests run on the I/O thread unless `offload` says otherwise: those (forecasts, which take
/// milliseconds) run on `handlerThreads` threads of their own, with a bounded queue, while the I/O thread
/// goes on answering `/healthz`.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    /// The port bound (the one asked for, or the one the system chose for 0).
    public let port: Int
    public let address: String
    let limits: HTTPLimits
    private let listener: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let handler: Handler
    private let offload: @Sendable (HTTPRequest) -> Bool
    private let lock = NSLock()
    private var stopping = false
    private var statsValue = HTTPServerStats()
    private var jobs: [(UInt64, HTTPRequest)] = []
    private var done: [(UInt64, HTTPResponse)] = []
    private let jobsReady = NSCondition()
    private let finished = DispatchSemaphore(value: 0)
    private var threads = 0

    /// Binds `address:port` and starts serving at once.
    /// - Parameters:
    ///   - address: an IPv4 address, or `localhost`.
    ///   - port: 0...65535; 0 lets the system choose (read `port`).
    ///   - handlerThreads: threads for offloaded requests (0: every request runs on the I/O thread).
    ///   - offload: which requests run on the handler threads.
    /// - Throws: `HTTPServerError.portTaken` when the port is in use, other `HTTPServerError`s for a bad
    ///   address or a failing socket call.
    public init(
        address: String, port: Int, limits: HTTPLimits = HTTPLimits(), handlerThreads: Int = 0,
        offload: @escaping @Sendable (HTTPRequest) -> Bool = { _ in false }, handler: @escaping Handler
    ) throws {
        if let problem = limits.problem { throw HTTPServerError.badLimits(problem) }
        guard (0...65535).contains(port) else { throw HTTPServerError.badLimits("port \(port) is not in 0...65535") }
        let ip = address == "localhost" ? "127.0.0.1" : address
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, ip, &addr.sin_addr) == 1 else { throw HTTPServerError.badAddress(address) }
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HTTPServerError.socket(call: "socket", address: address, port: port, errno: errno) }
        var one: Int32 = 1
        // SO_REUSEADDR lets a restarted process bind over connections in TIME_WAIT; it does not let two
        // listeners share a port on Linux, so a port in use is still refused below.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if bound != 0 {
            let e = errno
            close(fd)
            if e == EADDRINUSE { throw HTTPServerError.portTaken(address: address, port: port) }
            throw HTTPServerError.socket(call: "bind", address: address, port: port, errno: e)
        }
        guard listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw HTTPServerError.socket(call: "listen", address: address, port: port, errno: e)
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let e = errno
            close(fd)
            throw HTTPServerError.socket(call: "pipe", address: address, port: port, errno: e)
        }
        for f in [fd, fds[0], fds[1]] {
            _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL, 0) | O_NONBLOCK)
            _ = fcntl(f, F_SETFD, FD_CLOEXEC)
        }
        self.listener = fd
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.address = address
        self.limits = limits
        self.handler = handler
        self.offload = offload
        threads = max(0, min(handlerThreads, 64))
        let io = Thread { [self] in self.run() }
        io.name = "http-io-\(self.port)"
        io.stackSize = 1 << 20
        io.start()
        for i in 0..<threads {
            let t = Thread { [self] in self.handle() }
            t.name = "http-handler-\(i)"
            t.start()
        }
    }

    deinit {
        // The listener is closed by the I/O thread when it ends.
        close(wakeRead)
        close(wakeWrite)
    }

    /// A snapshot of what the server did.
    public var stats: HTTPServerStats {
        lock.lock()
        defer { lock.unlock() }
        return statsValue
    }

    /// Stops serving: closes every connection and the listener; waits (5 s at most) for the I/O thread.
    public func stop() {
        lock.lock()
        let already = stopping
        stopping = true
        lock.unlock()
        if already { return }
        jobsReady.lock()
        jobsReady.broadcast()
        jobsReady.unlock()
        wake()
        _ = finished.wait(timeout: .now() + 5)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func count(_ change: (inout HTTPServerStats) -> Void) {
        lock.lock()
        change(&statsValue)
        lock.unlock()
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    // MARK: handler threads

    private func handle() {
        while true {
            jobsReady.lock()
            while jobs.isEmpty && !isStopping { _ = jobsReady.wait(until: Date().addingTimeInterval(1)) }
            if isStopping {
                jobsReady.unlock()
                return
            }
            let (id, request) = jobs.removeFirst()
            jobsReady.unlock()
            let response = handler(request)
            lock.lock()
            done.append((id, response))
            lock.unlock()
            wake()
        }
    }

    // MARK: the I/O thread

    private final class Connection {
        let fd: Int32
        let id: UInt64
        var buffer: [UInt8] = []
        var parser: RequestParser
        var out: [UInt8] = []
        var written = 0
        var handling = false
        var keepAlive = true
        var closeAfterWrite = false
        var lastActivity: Double
        var requestStarted: Double?
        var writeStarted = 0.0

        init(fd: Int32, id: UInt64, limits: HTTPLimits, now: Double) {
            self.fd = fd
            self.id = id
            parser = RequestParser(limits: limits)
            lastActivity = now
        }

        var wantsRead: Bool { !handling && !closeAfterWrite && written >= out.count }
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private func run() {
        defer { finished.signal() }
        var connections: [UInt64: Connection] = [:]
        var nextID: UInt64 = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var pfds: [pollfd] = []
        var order: [UInt64] = []
        defer {
            for c in connections.values { close(c.fd) }
        }
        while !isStopping {
            pfds.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            pfds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            pfds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for c in connections.values {
                var events: Int16 = 0
                if c.wantsRead { events |= Int16(POLLIN) }
                if c.written < c.out.count { events |= Int16(POLLOUT) }
                pfds.append(pollfd(fd: c.fd, events: events, revents: 0))
                order.append(c.id)
            }
            // Bounded: timeouts are swept at least five times a second.
            let ready = poll(&pfds, nfds_t(pfds.count), 200)
            if ready < 0 && errno != EINTR { break }
            let now = Self.now()
            if pfds[0].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &sink, sink.count) > 0 {}
            }
            // Finished handler work.
            lock.lock()
            let finishedWork = done
            done.removeAll()
            lock.unlock()
            for (id, response) in finishedWork {
                guard let c = connections[id] else { continue }
                c.handling = false
                queue(response, on: c, now: now)
            }
            if pfds[1].revents & Int16(POLLIN) != 0 {
                for _ in 0..<64 {
                    let fd = accept(listener, nil, nil)
                    if fd < 0 { break }
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    if connections.count >= limits.maxConnections {
                        // Counted before the close, so a client that sees the close sees the count.
                        count { $0.refused += 1 }
                        close(fd)
                        continue
                    }
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    nextID &+= 1
                    connections[nextID] = Connection(fd: fd, id: nextID, limits: limits, now: now)
                    count {
                        $0.accepted += 1
                        $0.open = connections.count
                    }
                }
            }
            for (k, id) in order.enumerated() {
                let revents = pfds[k + 2].revents
                guard revents != 0, let c = connections[id] else { continue }
                var alive = true
                if revents & Int16(POLLOUT) != 0 { alive = flush(c, now: now) }
                if alive && revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 && c.wantsRead {
                    let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                    if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        alive = false
                    } else if n > 0 {
                        if c.buffer.isEmpty && c.requestStarted == nil { c.requestStarted = now }
                        c.buffer.append(contentsOf: chunk[0..<n])
                        c.lastActivity = now
                        alive = process(c, now: now)
                    }
                } else if alive && revents & (Int16(POLLHUP) | Int16(POLLERR)) != 0 && !c.handling {
                    alive = false
                }
                if !alive { drop(c, &connections) }
            }
            // Timeouts: a request that takes too long to arrive, a silent kept-alive connection, a reader
            // that does not take its response.
            for c in Array(connections.values) {
                if c.written < c.out.count {
                    if now - c.writeStarted > limits.readTimeout {
                        count { $0.timedOut += 1 }
                        drop(c, &connections)
                    }
                } else if !c.handling {
                    if let started = c.requestStarted, now - started > limits.readTimeout {
                        count {
                            $0.timedOut += 1
                            $0.rejected += 1
                        }
                        // Best effort: one non-blocking write of the 408, then close.
                        let bytes = HTTPResponse(
                            status: 408, text: "request not received within \(limits.readTimeout) s\n"
                        )
                        .serialized(keepAlive: false)
                        _ = bytes.withUnsafeBytes { send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        drop(c, &connections)
                    } else if c.requestStarted == nil && now - c.lastActivity > limits.idleTimeout {
                        count { $0.timedOut += 1 }
                        drop(c, &connections)
                    }
                }
            }
        }
        close(listener)
    }

    private func drop(_ c: Connection, _ connections: inout [UInt64: Connection]) {
        close(c.fd)
        connections[c.id] = nil
        count { $0.open = connections.count }
    }

    /// Parses what `c` holds and answers or dispatches each whole request. Returns false to close it.
    private func process(_ c: Connection, now: Double) -> Bool {
        while c.wantsRead {
            switch c.parser.parse(&c.buffer) {
            case .needMore:
                if c.parser.wantsContinue {
                    c.parser.continueSent()
                    c.out = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
                    c.written = 0
                    c.writeStarted = now
                    return flush(c, now: now)
                }
                if c.buffer.isEmpty && !c.parser.inRequest { c.requestStarted = nil }
                return true
            case .failure(let status, let reason):
                count { $0.rejected += 1 }
                c.closeAfterWrite = true
                c.keepAlive = false
                queue(HTTPResponse(status: status, text: reason + "\n"), on: c, now: now)
                return true
            case .complete:
                guard let request = c.parser.request else { return false }
                count { $0.requests += 1 }
                c.keepAlive = request.keepAlive
                c.requestStarted = c.buffer.isEmpty ? nil : now
                if threads > 0 && offload(request) {
                    jobsReady.lock()
                    let full = jobs.count >= limits.maxQueuedRequests
                    if !full {
                        jobs.append((c.id, request))
                        jobsReady.signal()
                    }
                    jobsReady.unlock()
                    if full {
                        count { $0.rejected += 1 }
                        queue(
                            HTTPResponse(status: 503, text: "too many requests waiting; retry later\n"), on: c, now: now
                        )
                    } else {
                        c.handling = true
                    }
                } else {
                    queue(handler(request), on: c, now: now)
                }
            }
        }
        return true
    }

    private func queue(_ response: HTTPResponse, on c: Connection, now: Double) {
        c.out = response.serialized(keepAlive: c.keepAlive && !c.closeAfterWrite)
        c.written = 0
        c.writeStarted = now
        if !c.keepAlive { c.closeAfterWrite = true }
        // Written at the next POLLOUT; most responses go out in one send there.
    }

    /// Writes what it can of `c`'s response. Returns false to close the connection.
    private func flush(_ c: Connection, now: Double) -> Bool {
        while c.written < c.out.count {
            let n = c.out.withUnsafeBytes {
                send(c.fd, $0.baseAddress! + c.written, $0.count - c.written, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return true }
                return false
            }
            c.written += n
        }
        c.out = []
        c.written = 0
        if c.closeAfterWrite { return false }
        c.lastActivity = now
        // A pipelined request may already be waiting in the buffer.
        return c.buffer.isEmpty ? true : process(c, now: now)
    }
}
