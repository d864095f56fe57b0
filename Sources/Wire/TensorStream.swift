/// How a message's tensors travel: the named tensors' bytes back to back, in the order the body names them,
/// cut into frames anywhere.
///
/// One rule covers every form a sender may choose: a frame per tensor; one packed frame for all of them
/// (fewer system calls and wake-ups for many small tensors); and a tensor larger than the receiver's frame
/// limit (`--max-message-bytes`, which libzmq enforces per frame) in several chunks that each fit. A
/// receiver knows every tensor's size from its registered shape, so it needs no other framing: it checks
/// the total, and takes each tensor in place when it lies within one frame, or joins its chunks.
public enum TensorStream {
    /// What a stream of frames cannot carry.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        /// The frames' bytes do not add up to the tensors' sizes.
        case wrongTotal(frames: Int, bytes: Int, expected: Int, tensors: Int)

        public var description: String {
            switch self {
            case .wrongTotal(let frames, let bytes, let expected, let tensors):
                return
                    "\(frames) tensor frames carry \(bytes) bytes, but the \(tensors) tensors named need \(expected) (their registered shapes, in the wire dtype)"
            }
        }
    }

    /// The most bytes worth packing into one frame: below it one copy costs less than the system calls and
    /// wake-ups of a frame per tensor (the seed model's 233 KB); above it the copy is the larger cost, and a
    /// frame per tensor goes without one (a 59 MB model's push).
    public static let packLimit = 1 << 20

    /// The frames that carry `tensors` to a receiver whose frames hold at most `maxFrameBytes` bytes.
    ///
    /// - Parameters:
    ///   - tensors: each tensor's bytes, in order; the memory must stay unchanged until the message is
    ///     sent and answered (frames point into it, no copy), except where `pack` copies it.
    ///   - pack: a buffer of the total's size to pack every tensor into (one copy, one frame) when they
    ///     fit one frame; nil sends a frame per tensor.
    ///   - maxFrameBytes: the receiver's frame limit; a larger tensor is cut into chunks of at most this
    ///     (whole elements of `elementSize` bytes each).
    public static func frames(
        _ tensors: [UnsafeRawBufferPointer], pack: UnsafeMutableRawBufferPointer? = nil, maxFrameBytes: Int,
        elementSize: Int = 4
    ) -> [Frame] {
        let total = tensors.reduce(0) { $0 + $1.count }
        if let pack, tensors.count > 1, total <= min(maxFrameBytes, packLimit), pack.count >= total {
            var offset = 0
            for t in tensors {
                UnsafeMutableRawBufferPointer(rebasing: pack[offset..<offset + t.count]).copyMemory(from: t)
                offset += t.count
            }
            return [Frame(external: UnsafeRawBufferPointer(rebasing: pack[0..<total]), owner: nil)]
        }
        // Views of the caller's memory: cutting them into chunks copies nothing.
        return frames(owned: tensors.map { Frame(external: $0, owner: nil) }, maxFrameBytes: maxFrameBytes, elementSize: elementSize)
    }

    /// The same cut for frames (a server's replies, or views of a sender's memory): a frame per tensor, a
    /// tensor larger than `maxFrameBytes` in chunks (views of a view; copies of owned bytes).
    public static func frames(owned tensors: [Frame], maxFrameBytes: Int, elementSize: Int = 4) -> [Frame] {
        let chunk = chunkBytes(maxFrameBytes, elementSize: elementSize)
        var out: [Frame] = []
        out.reserveCapacity(tensors.count)
        for t in tensors {
            if t.count <= chunk {
                out.append(t)
                continue
            }
            var start = 0
            while start < t.count {
                let end = min(t.count, start + chunk)
                out.append(t.slice(start..<end))
                start = end
            }
        }
        return out
    }

    /// The largest chunk that fits `maxFrameBytes`: whole elements, at least one.
    static func chunkBytes(_ maxFrameBytes: Int, elementSize: Int) -> Int {
        let size = max(1, elementSize)
        return max(size, (max(0, maxFrameBytes) / size) * size)
    }

    /// Cuts received `frames` into one frame per tensor of `sizes` bytes: a view where the tensor lies in one
    /// frame (no copy), its chunks joined into a new frame otherwise.
    /// - Throws: `TensorStream.Error.wrongTotal` when the frames do not hold exactly the sizes' total.
    public static func split(_ frames: ArraySlice<Frame>, sizes: [Int]) throws -> [Frame] {
        var expected = 0
        for s in sizes {
            // Sizes come from registered shapes, each bounded; a sum past Int.max cannot match any message.
            let (sum, overflow) = expected.addingReportingOverflow(s)
            guard !overflow, s >= 0 else {
                throw Error.wrongTotal(frames: frames.count, bytes: -1, expected: Int.max, tensors: sizes.count)
            }
            expected = sum
        }
        let received = frames.reduce(0) { $0 + $1.count }
        guard received == expected else {
            throw Error.wrongTotal(frames: frames.count, bytes: received, expected: expected, tensors: sizes.count)
        }
        var out: [Frame] = []
        out.reserveCapacity(sizes.count)
        var index = frames.startIndex
        var offset = 0  // into frames[index]
        for size in sizes {
            // Skip exhausted (or empty) frames, unless this tensor is empty too.
            while index < frames.endIndex, offset == frames[index].count, size > 0 {
                index += 1
                offset = 0
            }
            if size == 0 {
                out.append(Frame([]))
                continue
            }
            let frame = frames[index]
            if frame.count - offset >= size {
                out.append(frame.slice(offset..<offset + size))
                offset += size
                continue
            }
            var joined = [UInt8]()
            joined.reserveCapacity(size)
            var need = size
            while need > 0 {
                let f = frames[index]
                let take = min(need, f.count - offset)
                f.withUnsafeBytes { joined.append(contentsOf: $0[offset..<offset + take]) }
                need -= take
                offset += take
                if offset == f.count, need > 0 {
                    index += 1
                    offset = 0
                }
            }
            out.append(Frame(joined))
        }
        return out
    }
}
