/// The bytes of one message frame, whoever owns them.
///
/// `Wire` knows nothing of sockets: a transport turns frames into its own messages and back. Received
/// frames are read in place (`external`, kept alive by the transport's message object); a worker's
/// gradient frames point into the variables' gradient buffers (`external` with no owner), which the
/// worker leaves untouched until the server has answered; small frames own their bytes.
public struct Frame: @unchecked Sendable {
    public enum Storage {
        /// Owned bytes (headers, bodies).
        case bytes([UInt8])
        /// Owned float32 values (a snapshot of a variable, for a reply).
        case floats([Float])
        /// Memory owned elsewhere: by `owner` when set (a received message), else by the sender, who must
        /// keep it alive and unchanged until the frame is sent and answered.
        case external(UnsafeRawBufferPointer, owner: AnyObject?)
    }

    public let storage: Storage

    public init(_ bytes: [UInt8]) { storage = .bytes(bytes) }
    public init(floats: [Float]) { storage = .floats(floats) }
    public init(external bytes: UnsafeRawBufferPointer, owner: AnyObject?) { storage = .external(bytes, owner: owner) }

    /// The frame's size in bytes.
    public var count: Int {
        switch storage {
        case .bytes(let b): return b.count
        case .floats(let f): return f.count * MemoryLayout<Float>.size
        case .external(let p, _): return p.count
        }
    }

    /// Reads the frame in place; the pointer is valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .bytes(let b): return try b.withUnsafeBytes(body)
        case .floats(let f): return try f.withUnsafeBytes(body)
        case .external(let p, let owner):
            return try withExtendedLifetime(owner) { try body(p) }
        }
    }

    /// The bytes in `range` as a frame of their own: a view that keeps the same owner for a received frame
    /// (no copy), a copy otherwise. The caller checks the range against `count` first.
    public func slice(_ range: Range<Int>) -> Frame {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "frame slice out of bounds")
        switch storage {
        case .external(let p, let owner):
            return Frame(external: UnsafeRawBufferPointer(rebasing: p[range]), owner: owner)
        case .bytes, .floats:
            return Frame(withUnsafeBytes { Array($0[range]) })
        }
    }

    /// A copy of the bytes (tests and small frames).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}
