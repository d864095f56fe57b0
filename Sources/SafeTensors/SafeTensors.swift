import Foundation

/// The safetensors file format (8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets}}`, then raw little-endian data), read and written so that
/// Python's `safetensors` package loads what we save and we load what TensorFlow's scripts saved.
///
/// Every number a file gives is checked before it is used, overflow-safe: the header length, each shape
/// and its element count, each `data_offsets` pair, and the layout of the data (the tensors tile it exactly,
/// as the reference reader requires: no overlap, no gap, nothing after the last one). Values that are not
/// finite are refused, naming the tensor. A damaged file is an error naming the file and what is wrong,
/// never a trap. Files written with `checksum: true` carry a CRC-32C of their contents in the metadata
/// (`checksum`), which reading verifies (see `Checksum`).
public enum SafeTensors {
    /// One tensor of a file, converted to float32.
    public struct Entry: Equatable, Sendable {
        public let shape: [Int]
        public let scalars: [Float]
        /// The dtype as stored (`F32`, `F64`).
        public let dtype: String
    }

    /// A whole file: tensors, metadata, and whether a checksum vouched for them.
    public struct File: Sendable {
        public let tensors: [String: Entry]
        public let metadata: [String: String]
        /// True when the file carried a checksum and it matched; false when it carried none (written by an
        /// older version or another program: damage to it cannot be told from content).
        public let checksumVerified: Bool
    }

    /// Why a file could not be read or written; each message names the file.
    public enum Error: Swift.Error, CustomStringConvertible, Equatable {
        case unreadable(path: String, reason: String)
        /// A file could not be written (a missing directory, permissions, a full disk).
        case unwritable(path: String, reason: String)
        case malformed(path: String, reason: String)
        case unsupportedDType(path: String, tensor: String, dtype: String)
        case missingTensor(path: String, name: String)
        /// A value that is NaN or infinite (or, from F64, beyond float32's range).
        case nonFinite(path: String, tensor: String, index: Int, value: String)
        /// The contents do not match the checksum the file carries: it was damaged after it was written.
        case checksumMismatch(path: String, stored: String, computed: String)

        public var description: String {
            switch self {
            case .unreadable(let p, let r): return "cannot read \(p): \(r)"
            case .unwritable(let p, let r): return "cannot write \(p): \(r)"
            case .malformed(let p, let r): return "\(p) is not a valid safetensors file: \(r)"
            case .unsupportedDType(let p, let t, let d):
                return "\(p): tensor \(t) has dtype \(d); only F32 and F64 are read"
            case .missingTensor(let p, let n): return "\(p) has no tensor named \(n)"
            case .nonFinite(let p, let t, let i, let v):
                return "\(p): tensor \(t) holds \(v) at element \(i); only finite values are accepted"
            case .checksumMismatch(let p, let s, let c):
                return
                    "\(p) is damaged: its contents give checksum \(c) but it was written with \(s) (a torn write, a bit flip, or an edit)"
            }
        }
    }

    /// The largest header read, as the reference implementation's limit (100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Reads every tensor of a file, converting F64 to float32.
    /// - Throws: `SafeTensors.Error` naming the file and what is wrong with it.
    public static func read(_ path: String) throws -> [String: Entry] {
        try load(path).tensors
    }

    /// Reads a whole file once: tensors, metadata, and the checksum's verdict.
    /// - Throws: `SafeTensors.Error` naming the file and what is wrong with it.
    public static func load(_ path: String) throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error.unreadable(path: path, reason: "no such file or not readable")
        }
        return try decodeFile(data, path: path)
    }

    /// The `__metadata__` strings of a file (empty when it has none). Reads the header only: the data is
    /// neither read nor verified.
    /// - Throws: `SafeTensors.Error` naming the file.
    public static func metadata(_ path: String) throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Error.unreadable(path: path, reason: "no such file or not readable")
        }
        defer { try? handle.close() }
        let size: UInt64
        let prefix: Data
        do {
            size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            prefix = try handle.read(upToCount: 8) ?? Data()
        } catch {
            throw Error.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        let length = try headerLength(prefix, fileSize: size, path: path)
        let header: Data
        do { header = try handle.read(upToCount: length) ?? Data() } catch {
            throw Error.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        guard header.count == length else {
            throw Error.malformed(path: path, reason: "the file ends inside its \(length)-byte header")
        }
        return try Header.parse(header, path: path).metadata
    }

    /// Decodes safetensors bytes (`path` only names the source in errors).
    public static func decode(_ data: Data, path: String = "<memory>") throws -> [String: Entry] {
        try decodeFile(data, path: path).tensors
    }

    /// Decodes safetensors bytes into tensors, metadata and the checksum's verdict.
    /// - Throws: `SafeTensors.Error` naming `path` and what is wrong.
    public static func decodeFile(_ data: Data, path: String = "<memory>") throws -> File {
        // A slice of a larger Data keeps its parent's indices; everything below counts from 0.
        let data = data.startIndex == 0 ? data : Data(data)
        let length = try headerLength(data.prefix(8), fileSize: UInt64(data.count), path: path)
        let base = 8 + length
        let header = try Header.parse(data.subdata(in: 8..<base), path: path)
        let dataBytes = data.count - base
        // The layout first: for a truncated file "truncated" says more than a checksum mismatch would.
        let slots = try Header.layout(header.tensors, dataBytes: dataBytes, path: path)
        var verified = false
        if let stored = header.metadata[Checksum.key] {
            let expected = try Checksum.parse(stored, path: path)
            var crc = CRC32C()
            crc.update(Checksum.canonical(metadata: header.metadata, tensors: header.tensors))
            data.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[base...])) }
            guard crc.value == expected else {
                throw Error.checksumMismatch(path: path, stored: stored, computed: Checksum.format(crc.value))
            }
            verified = true
        }
        var out: [String: Entry] = [:]
        try data.withUnsafeBytes { raw in
            for s in slots {
                let region = UnsafeRawBufferPointer(rebasing: raw[(base + s.start)..<(base + s.end)])
                let scalars = try values(of: s, in: region, path: path)
                out[s.name] = Entry(shape: s.shape, scalars: scalars, dtype: s.dtype)
            }
        }
        return File(tensors: out, metadata: header.metadata, checksumVerified: verified)
    }

    /// The header length from a file's first 8 bytes, checked against the file's size and `maxHeaderBytes`.
    static func headerLength(_ prefix: Data, fileSize: UInt64, path: String) throws -> Int {
        guard prefix.count == 8, fileSize >= 8 else {
            throw Error.malformed(path: path, reason: "shorter than its 8-byte header length (\(fileSize) bytes)")
        }
        var length: UInt64 = 0
        for (i, b) in prefix.enumerated() { length |= UInt64(b) << (8 * UInt64(i)) }
        guard length > 0, length <= UInt64(maxHeaderBytes) else {
            throw Error.malformed(
                path: path,
                reason: "header length \(length) is not in 1...\(maxHeaderBytes) (the first 8 bytes are damaged?)")
        }
        guard length <= fileSize - 8 else {
            throw Error.malformed(
                path: path,
                reason: "header length \(length) runs past the end of the \(fileSize)-byte file (truncated?)")
        }
        return Int(length)
    }

    /// Converts one tensor's bytes to float32, refusing values that are not finite.
    static func values(of slot: Header.Slot, in region: UnsafeRawBufferPointer, path: String) throws -> [Float] {
        let count = slot.count
        switch slot.dtype {
        case "F32":
            var bad: (Int, Float)?
            let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let v = Float(
                        bitPattern: UInt32(littleEndian: region.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    if !v.isFinite && bad == nil { bad = (i, v) }
                    buffer[i] = v
                }
                initialized = count
            }
            if let (i, v) = bad { throw Error.nonFinite(path: path, tensor: slot.name, index: i, value: "\(v)") }
            return scalars
        case "F64":
            var bad: (Int, Double)?
            let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let d = Double(
                        bitPattern: UInt64(littleEndian: region.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    let v = Float(d)
                    if !v.isFinite && bad == nil { bad = (i, d) }
                    buffer[i] = v
                }
                initialized = count
            }
            if let (i, d) = bad {
                let text = d.isFinite ? "\(d) (beyond float32's range)" : "\(d)"
                throw Error.nonFinite(path: path, tensor: slot.name, index: i, value: text)
            }
            return scalars
        default:
            throw Error.unsupportedDType(path: path, tensor: slot.name, dtype: slot.dtype)
        }
    }

    /// The bytes before float32 tensors' data, in the order given: the header's length (8 bytes,
    /// little-endian) and the JSON header with optional string metadata; with `checksum`, the CRC-32C of the
    /// contents is added to the metadata under `checksum`.
    public static func header(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], metadata: [String: String] = [:],
        checksum: Bool = false
    ) -> [UInt8] {
        var metadata = metadata
        var entries: [Header.Tensor] = []
        var offset = 0
        for t in tensors {
            let n = t.scalars.count * 4
            entries.append(Header.Tensor(name: t.name, dtype: "F32", shape: t.shape, offsets: [offset, offset + n]))
            offset += n
        }
        if checksum {
            metadata[Checksum.key] = nil
            var crc = CRC32C()
            crc.update(Checksum.canonical(metadata: metadata, tensors: entries))
            for t in tensors { t.scalars.withUnsafeBytes { crc.update($0) } }
            metadata[Checksum.key] = Checksum.format(crc.value)
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        for e in entries {
            parts.append(
                "\(jsonString(e.name)):{\"dtype\":\"F32\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(e.offsets[0]),\(e.offsets[1])]}"
            )
        }
        var header = "{" + parts.joined(separator: ",") + "}"
        // Pad the header with spaces to 8 bytes so the data is aligned, as the reference writer does.
        while header.utf8.count % 8 != 0 { header += " " }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.utf8.count)
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header.utf8)
        return out
    }

    /// A whole file's bytes in memory (tests, fuzz seeds, small files).
    public static func encode(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], metadata: [String: String] = [:],
        checksum: Bool = false
    ) -> Data {
        let head = header(tensors, metadata: metadata, checksum: checksum)
        var data = Data()
        data.reserveCapacity(head.count + tensors.reduce(0) { $0 + $1.scalars.count * 4 })
        data.append(contentsOf: head)
        for t in tensors {
            t.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        return data
    }

    /// Streams a file to `handle`: the header, then each tensor's bytes straight from its array, so that
    /// writing a checkpoint of S bytes costs no second S bytes of memory.
    public static func write(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], metadata: [String: String] = [:],
        checksum: Bool = false, to handle: FileHandle
    ) throws {
        try handle.write(contentsOf: header(tensors, metadata: metadata, checksum: checksum))
        for t in tensors where !t.scalars.isEmpty {
            try t.scalars.withUnsafeBytes { raw in
                try handle.write(
                    contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: raw.baseAddress!), count: raw.count, deallocator: .none))
            }
        }
    }

    /// Writes float32 tensors to `path` atomically (a temporary file renamed into place).
    public static func write(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], to path: String,
        metadata: [String: String] = [:], checksum: Bool = false
    ) throws {
        let data = encode(tensors, metadata: metadata, checksum: checksum)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw Error.unwritable(path: path, reason: "\(error.localizedDescription)")
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}
