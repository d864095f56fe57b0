/// The wire protocol between workers (DEALER) and parameter servers (ROUTER), after Li et al.,
/// "Scaling Distributed Machine Learning with the Parameter Server", OSDI 2014: workers push
/// gradients and pull variables, keyed by variable name.
///
/// Every message is: a fixed 40-byte little-endian `Header`, a body frame (JSON, small), then zero
/// or more raw little-endian float32 tensor frames, one per variable named in the body, in order.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    /// worker → server: who I am, how many workers there are. Reply: `.welcome`.
    case hello = 1
    /// server → worker: the server's mode and optimizer.
    case welcome = 2
    /// worker → server: create-or-check these variables. Reply: `.registered` or `.error`.
    case register = 3
    case registered = 4
    /// worker → server: send me these variables' values for step `step`. Reply: `.values`.
    case pull = 5
    case values = 6
    /// worker → server: gradients of step `step`, one frame per named variable. Reply: `.pushed`.
    case push = 7
    case pushed = 8
    /// worker → server: this worker has finished. Reply: `.goodbye`.
    case done = 9
    case goodbye = 10
    /// server → worker: the request failed; the body says why.
    case error = 11
    /// worker → server: I am alive (sent while a reply is slow in coming). Reply: `.pong`.
    case ping = 12
    case pong = 13
    /// worker → server, from a connection of its own, every second whatever the worker is doing: this process
    /// (task index and incarnation in the header) is alive. Accepted from any connection whose incarnation
    /// (and CURVE key) match the index's; it is what `--worker-timeout` and takeover count. Reply: `.pong`.
    case heartbeat = 14

    /// Whether servers take this kind (the others are replies).
    public var isRequest: Bool {
        switch self {
        case .hello, .register, .pull, .push, .done, .ping, .heartbeat: return true
        case .welcome, .registered, .values, .pushed, .goodbye, .error, .pong: return false
        }
    }
}

/// The fixed header of every message.
public struct Header: Equatable, Sendable {
    /// "PS" in ASCII, so stray traffic is told apart at once.
    public static let magic: UInt16 = 0x5350
    /// 2: the incarnation field is the sender's (workers' pushes are deduplicated by it); ping/pong.
    public static let currentVersion: UInt8 = 2
    public static let size = 40

    public var version: UInt8
    public var kind: MessageKind
    /// The worker's task index (requests) or the worker addressed (replies).
    public var workerID: UInt32
    /// Echoed in the reply, so a worker matches replies to requests.
    public var requestID: UInt64
    /// The training step the message is about.
    public var step: UInt64
    /// The sender's incarnation, random per process start. In replies a change means the server
    /// restarted; in requests it tells a restarted worker from a re-sent request of the same one.
    public var incarnation: UInt64
    /// Tensor frames that follow the body.
    public var tensorCount: UInt32

    public init(
        kind: MessageKind, workerID: UInt32 = 0, requestID: UInt64 = 0, step: UInt64 = 0, incarnation: UInt64 = 0,
        tensorCount: UInt32 = 0, version: UInt8 = Header.currentVersion
    ) {
        self.version = version
        self.kind = kind
        self.workerID = workerID
        self.requestID = requestID
        self.step = step
        self.incarnation = incarnation
        self.tensorCount = tensorCount
    }

    /// The 40 bytes: magic u16, version u8, kind u8, worker u32, request u64, step u64,
    /// incarnation u64, tensor count u32, reserved u32.
    public var encoded: [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(Header.size)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        put(Header.magic)
        put(version)
        put(kind.rawValue)
        put(workerID)
        put(requestID)
        put(step)
        put(incarnation)
        put(tensorCount)
        put(UInt32(0))
        return b
    }

    /// Parses a header frame.
    /// - Throws: `WireError` for a short frame, a wrong magic, an unsupported version or an unknown kind.
    public init(decoding bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count == Header.size else { throw WireError.badHeaderSize(bytes.count) }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var v: T = 0
            withUnsafeMutableBytes(of: &v) {
                $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + MemoryLayout<T>.size)]))
            }
            return T(littleEndian: v)
        }
        guard get(0, UInt16.self) == Header.magic else { throw WireError.badMagic }
        version = get(2, UInt8.self)
        guard version == Header.currentVersion else { throw WireError.unsupportedVersion(version) }
        let rawKind = get(3, UInt8.self)
        guard let k = MessageKind(rawValue: rawKind) else { throw WireError.unknownKind(rawKind) }
        kind = k
        workerID = get(4, UInt32.self)
        requestID = get(8, UInt64.self)
        step = get(16, UInt64.self)
        incarnation = get(24, UInt64.self)
        tensorCount = get(32, UInt32.self)
    }
}
