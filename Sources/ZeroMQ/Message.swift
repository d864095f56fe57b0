import CZeroMQ

/// One frame of a multipart message, owning a heap-allocated `zmq_msg_t` that is closed exactly once (in `deinit`).
///
/// Received frames are read in place through `withUnsafeBytes`; frames built from a `[Float]` or `[UInt8]`
/// hand their storage to libzmq without a copy (`zmq_msg_init_data`), which releases it when sent.
public final class Message {
    let msg: UnsafeMutablePointer<zmq_msg_t>

    /// An empty frame, ready to receive into.
    public init() {
        msg = .allocate(capacity: 1)
        zmq_msg_init(msg)
    }

    /// A frame holding a copy of `bytes` (for small frames such as headers).
    public init(copying bytes: UnsafeRawBufferPointer) {
        msg = .allocate(capacity: 1)
        zmq_msg_init_size(msg, bytes.count)
        if bytes.count > 0, let base = bytes.baseAddress {
            zmq_msg_data(msg).copyMemory(from: base, byteCount: bytes.count)
        }
    }

    /// A frame holding a copy of `bytes`.
    public init(_ bytes: [UInt8]) {
        msg = .allocate(capacity: 1)
        zmq_msg_init_size(msg, bytes.count)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { zmq_msg_data(msg).copyMemory(from: base, byteCount: src.count) }
        }
    }

    /// A frame that borrows the storage of `floats` until libzmq has sent it: no copy of the tensor is made.
    public init(sharing floats: [Float]) {
        msg = .allocate(capacity: 1)
        Message.initShared(msg, box: StorageBox(floats), count: floats.count * MemoryLayout<Float>.stride)
    }

    /// A frame that borrows the storage of `bytes` until libzmq has sent it.
    public init(sharing bytes: [UInt8]) {
        msg = .allocate(capacity: 1)
        Message.initShared(msg, box: StorageBox(bytes), count: bytes.count)
    }

    /// A frame that points at `bytes` without copying or owning them.
    ///
    /// The caller must keep the memory alive and unchanged until libzmq is done with the frame: in this
    /// project, until the peer has replied to the message that carried it.
    public init(borrowing bytes: UnsafeRawBufferPointer) {
        msg = .allocate(capacity: 1)
        if bytes.count == 0 {
            zmq_msg_init(msg)
        } else {
            zmq_msg_init_data(msg, UnsafeMutableRawPointer(mutating: bytes.baseAddress!), bytes.count, nil, nil)
        }
    }

    private static func initShared<T>(_ msg: UnsafeMutablePointer<zmq_msg_t>, box: StorageBox<T>, count: Int) {
        if count == 0 {
            zmq_msg_init(msg)
            return
        }
        let retained = Unmanaged.passRetained(box)
        let data = box.baseAddress
        zmq_msg_init_data(
            msg, data, count,
            { _, hint in
                if let hint { Unmanaged<AnyObject>.fromOpaque(hint).release() }
            }, retained.toOpaque())
    }

    deinit {
        zmq_msg_close(msg)
        msg.deallocate()
    }

    /// The frame's size in bytes.
    public var count: Int { zmq_msg_size(msg) }

    /// Reads the frame in place; the pointer is valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg)))
    }

    /// Where the frame's bytes are: for a borrowed frame, the caller's own buffer (tests check that no copy was made).
    public var dataAddress: UnsafeRawPointer? { UnsafeRawPointer(zmq_msg_data(msg)) }

    /// A property of a received frame's connection (`zmq_msg_gets`): `User-Id` is the CURVE client's public
    /// key (Z85) once a ZAP handler admitted it, `Peer-Address` the remote IP address. nil when absent.
    public func property(_ name: String) -> String? {
        guard let p = zmq_msg_gets(msg, name) else { return nil }
        return String(cString: p)
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Whether more frames of the same message follow this one.
    var more: Bool { zmq_msg_more(msg) != 0 }
}

/// Keeps an array's storage alive and at a fixed address while libzmq holds a pointer into it.
final class StorageBox<T> {
    var storage: [T]
    let baseAddress: UnsafeMutableRawPointer

    init(_ array: [T]) {
        storage = array
        // Share the array's buffer (no copy): the box holds a reference, so the buffer stays alive and, by
        // copy-on-write, unchanged (a writer to the original array gets a copy of its own) until libzmq is done.
        baseAddress = UnsafeMutableRawPointer(
            mutating: storage.withUnsafeBytes { $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)! })
    }
}

/// Gives memory freed by dropped messages back to the system (glibc's `malloc_trim`).
public func releaseFreeMemory() { scoped_trainer_release_free_memory() }

/// Keeps big blocks in the process: glibc otherwise maps every allocation past 32 MB afresh and unmaps it
/// when freed, so each 59 MB message received (a push at a server, values at a worker) costs 14,000 page
/// faults, their zeroing and a kernel round trip: measured with `ps-load` (15M parameters) as 71% of a
/// server's CPU in the kernel and twice its CPU per update. Freed blocks then serve the next message of that
/// size; the peak resident size is what it was. A server still gives memory back after dropping a hostile
/// oversized message (`releaseFreeMemory`). Call once, before any thread starts allocating.
public func keepLargeMessageBlocks() { scoped_trainer_keep_large_blocks() }
