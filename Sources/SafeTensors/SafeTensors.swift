import Foundation

/// The safetensors file format (8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets}}`, then raw little-endian data), read and written so that
/// Python's `safetensors` package loads what we save and we load what TensorFlow's scripts saved.
public enum SafeTensors {
    /// One tensor of a file, converted to float32.
    public struct Entry: Equatable, Sendable {
        public let shape: [Int]
        public let scalars: [Float]
        /// The dtype as stored (`F32`, `F64`).
        public let dtype: String
    }

    /// Why a file could not be read or written; each message names the file.
    public enum Error: Swift.Error, CustomStringConvertible, Equatable {
        case unreadable(path: String, reason: String)
        case malformed(path: String, reason: String)
        case unsupportedDType(path: String, tensor: String, dtype: String)
        case missingTensor(path: String, name: String)

        public var description: String {
            switch self {
            case .unreadable(let p, let r): return "cannot read \(p): \(r)"
            case .malformed(let p, let r): return "\(p) is not a valid safetensors file: \(r)"
            case .unsupportedDType(let p, let t, let d):
                return "\(p): tensor \(t) has dtype \(d); only F32 and F64 are read"
            case .missingTensor(let p, let n): return "\(p) has no tensor named \(n)"
            }
        }
    }

    /// Reads every tensor of a file, converting F64 to float32.
    /// - Throws: `SafeTensors.Error` naming the file and what is wrong with it.
    public static func read(_ path: String) throws -> [String: Entry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error.unreadable(path: path, reason: "no such file or not readable")
        }
        return try decode(data, path: path)
    }

    /// The `__metadata__` strings of a file (empty when it has none).
    public static func metadata(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path), data.count >= 8 else {
            throw Error.unreadable(path: path, reason: "no such file, not readable, or shorter than 8 bytes")
        }
        let bytes = [UInt8](data.prefix(8))
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 0, 8 + headerLength <= data.count,
            let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength)))
                as? [String: Any]
        else { throw Error.malformed(path: path, reason: "unreadable header") }
        return header["__metadata__"] as? [String: String] ?? [:]
    }

    /// Decodes safetensors bytes (`path` only names the source in errors).
    public static func decode(_ data: Data, path: String = "<memory>") throws -> [String: Entry] {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else {
            throw Error.malformed(path: path, reason: "shorter than its 8-byte header length")
        }
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 0, 8 + headerLength <= bytes.count else {
            throw Error.malformed(
                path: path, reason: "header length \(headerLength) exceeds the file size \(bytes.count)")
        }
        let headerData = Data(bytes[8..<(8 + headerLength)])
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw Error.malformed(path: path, reason: "header is not a JSON object")
        }
        let base = 8 + headerLength
        var out: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw Error.malformed(path: path, reason: "entry \(name) lacks dtype, shape or data_offsets") }
            let count = shape.reduce(1, *)
            let (start, end) = (base + offsets[0], base + offsets[1])
            guard start <= end, end <= bytes.count else {
                throw Error.malformed(path: path, reason: "tensor \(name) runs past the end of the file")
            }
            let scalars: [Float]
            switch dtype {
            case "F32":
                guard end - start == count * 4 else {
                    throw Error.malformed(
                        path: path, reason: "tensor \(name) has \(end - start) bytes for \(count) F32 values")
                }
                scalars = (0..<count).map { i in
                    let o = start + 4 * i
                    return Float(
                        bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(
                            bytes[o + 3]) << 24)
                }
            case "F64":
                guard end - start == count * 8 else {
                    throw Error.malformed(
                        path: path, reason: "tensor \(name) has \(end - start) bytes for \(count) F64 values")
                }
                scalars = (0..<count).map { i in
                    let o = start + 8 * i
                    var bits: UInt64 = 0
                    for k in 0..<8 { bits |= UInt64(bytes[o + k]) << (8 * k) }
                    return Float(Double(bitPattern: bits))
                }
            default:
                throw Error.unsupportedDType(path: path, tensor: name, dtype: dtype)
            }
            out[name] = Entry(shape: shape, scalars: scalars, dtype: dtype)
        }
        return out
    }

    /// Encodes float32 tensors, in the order given, with optional string metadata.
    public static func encode(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], metadata: [String: String] = [:]
    ) -> Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let n = t.scalars.count * 4
            parts.append(
                "\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + n)]}"
            )
            offset += n
        }
        header += parts.joined(separator: ",") + "}"
        // Pad the header with spaces to 8 bytes so the data is aligned, as the reference writer does.
        while header.utf8.count % 8 != 0 { header += " " }
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for t in tensors {
            t.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        return data
    }

    /// Writes float32 tensors to `path` atomically (a temporary file renamed into place).
    public static func write(
        _ tensors: [(name: String, shape: [Int], scalars: [Float])], to path: String,
        metadata: [String: String] = [:]
    ) throws {
        let data = encode(tensors, metadata: metadata)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw Error.unreadable(path: path, reason: "cannot write: \(error.localizedDescription)")
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
