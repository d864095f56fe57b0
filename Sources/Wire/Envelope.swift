/// A parsed message: header, body frame and tensor frames, read in place from the received frames.
public struct Envelope: Sendable {
    public let header: Header
    public let body: Frame
    public let tensors: ArraySlice<Frame>

    /// Parses frames after any routing identity has been removed.
    /// - Throws: `WireError` when the frames are not a well-formed message.
    public init(frames: ArraySlice<Frame>) throws {
        guard frames.count >= 2 else { throw WireError.tooFewFrames(frames.count) }
        let first = frames.startIndex
        header = try frames[first].withUnsafeBytes { try Header(decoding: $0) }
        body = frames[first + 1]
        tensors = frames[(first + 2)...]
        guard tensors.count == Int(header.tensorCount) else {
            throw WireError.tensorCountMismatch(header: Int(header.tensorCount), frames: tensors.count, names: -1)
        }
    }

    /// Decodes the body as `T`.
    /// - Throws: `WireError.badBody` naming the type, or `.bodyTooLarge` past `limit` bytes.
    public func decode<T: Decodable>(_ type: T.Type, limit: Int = Body.defaultLimit) throws -> T {
        guard body.count <= limit else { throw WireError.bodyTooLarge(bytes: body.count, limit: limit) }
        return try body.withUnsafeBytes { try Body.decode(T.self, from: $0) }
    }

    /// The frames of a message: header, body, tensors (the header's tensor count is set here).
    public static func frames(_ header: Header, body: [UInt8], tensors: [Frame] = []) -> [Frame] {
        var h = header
        h.tensorCount = UInt32(tensors.count)
        return [Frame(h.encoded), Frame(body)] + tensors
    }

    /// The frames of a message whose body is `value` encoded.
    public static func frames<T: Encodable>(_ header: Header, _ value: T, tensors: [Frame] = []) -> [Frame] {
        frames(header, body: Body.encode(value), tensors: tensors)
    }
}
