import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.*`) with scalar summaries, so that
/// `tensorboard --logdir DIR` shows the loss, held-out MSE and throughput curves.
///
/// The format is TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the
/// data) around `tensorflow.Event` protocol buffers, encoded by hand: only a few fields are needed.
public final class EventWriter {
    private let handle: FileHandle
    public let path: String

    /// Creates `directory` if needed and opens a new event file in it.
    /// - Throws: `CocoaError` naming the path when the directory or file cannot be created.
    public init(directory: String, suffix: String = "") throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName
        path = "\(directory)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host)\(suffix)"
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        write(event.bytes)
    }

    deinit { try? handle.close() }

    /// Appends scalar `value` under `tag` at `step`.
    public func scalar(_ tag: String, _ value: Float, step: Int) {
        var v = Proto()
        v.string(1, tag)
        v.float(2, value)
        var summary = Proto()
        summary.message(1, v.bytes)
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(step))
        event.message(5, summary.bytes)
        write(event.bytes)
    }

    /// Forces the written events to disk.
    public func flush() { try? handle.synchronize() }

    private func write(_ data: [UInt8]) {
        var record: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += data
        record += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        handle.write(Data(record))
    }
}

/// A minimal protocol-buffer encoder for the few field types an Event needs.
struct Proto {
    var bytes: [UInt8] = []

    mutating func key(_ field: Int, _ wire: Int) { varintRaw(UInt64(field << 3 | wire)) }

    mutating func varintRaw(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, 0)
        varintRaw(value)
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    mutating func message(_ field: Int, _ payload: [UInt8]) {
        key(field, 2)
        varintRaw(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(_ field: Int, _ s: String) { message(field, Array(s.utf8)) }
}

/// CRC-32C (Castagnoli), with TFRecord's mask: rotate right by 15 and add 0xa282ead8.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ data: [UInt8]) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xa282_ead8
    }
}
