import Foundation

extension SafeTensors {
    /// A parsed header: metadata strings and each tensor's dtype, shape and offsets as the file states
    /// them (not yet checked against each other or the file; `layout` does that).
    struct Header {
        struct Tensor {
            var name: String
            var dtype: String
            var shape: [Int]
            var offsets: [Int]
        }

        /// A tensor whose numbers have been checked: `count` elements in bytes `start..<end` of the data.
        struct Slot {
            var name: String
            var dtype: String
            var shape: [Int]
            var count: Int
            var start: Int
            var end: Int
        }

        var metadata: [String: String] = [:]
        var tensors: [Tensor] = []

        /// Bytes per element of every dtype the format defines; only F32 and F64 are read as values.
        static let itemSize: [String: Int] = [
            "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
            "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
        ]

        /// Parses the JSON header strictly: every integer must be a JSON integer that fits in `Int` (not
        /// `true`, `1.5` or `"1"`), `__metadata__` must map strings to strings.
        /// - Throws: `SafeTensors.Error.malformed` naming the field at fault.
        static func parse(_ json: Data, path: String) throws -> Header {
            do {
                return try JSONDecoder().decode(Wrapper.self, from: json).header
            } catch let e as DecodingError {
                throw Error.malformed(path: path, reason: "header: \(describe(e))")
            } catch {
                throw Error.malformed(path: path, reason: "header is not a JSON object: \(error)")
            }
        }

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        private struct Info: Decodable {
            var dtype: String
            var shape: [Int]
            var data_offsets: [Int]
        }

        private struct Wrapper: Decodable {
            var header = Header()
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: Key.self)
                for key in c.allKeys {
                    if key.stringValue == "__metadata__" {
                        header.metadata = try c.decode([String: String].self, forKey: key)
                    } else {
                        let info = try c.decode(Info.self, forKey: key)
                        header.tensors.append(
                            Tensor(
                                name: key.stringValue, dtype: info.dtype, shape: info.shape, offsets: info.data_offsets)
                        )
                    }
                }
            }
        }

        private static func describe(_ e: DecodingError) -> String {
            func at(_ c: DecodingError.Context) -> String {
                let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                return p.isEmpty ? "" : "field \(p): "
            }
            switch e {
            case .typeMismatch(_, let c): return at(c) + c.debugDescription
            case .valueNotFound(_, let c): return at(c) + c.debugDescription
            case .keyNotFound(let k, let c): return at(c) + "lacks \(k.stringValue)"
            case .dataCorrupted(let c):
                return at(c) + "not valid JSON, or a number that is not an integer within Int's range"
            @unknown default: return "\(e)"
            }
        }

        /// Checks every tensor's numbers against each other and the data: offsets in order and within
        /// `dataBytes`, element counts and byte counts without overflow, and the tensors tiling the data
        /// exactly (no overlap, no gap, no trailing bytes), as the reference reader requires.
        /// - Throws: `SafeTensors.Error.malformed` naming the tensor and the numbers.
        static func layout(_ tensors: [Tensor], dataBytes: Int, path: String) throws -> [Slot] {
            var slots: [Slot] = []
            slots.reserveCapacity(tensors.count)
            for t in tensors {
                func bad(_ reason: String) -> Error { .malformed(path: path, reason: "tensor \(t.name): \(reason)") }
                guard let size = itemSize[t.dtype] else {
                    throw bad(
                        "unknown dtype \(t.dtype.prefix(40)); expected one of \(itemSize.keys.sorted().joined(separator: ", "))"
                    )
                }
                guard t.offsets.count == 2 else { throw bad("data_offsets has \(t.offsets.count) numbers, not 2") }
                let (start, end) = (t.offsets[0], t.offsets[1])
                guard start >= 0, end >= start else {
                    throw bad("data_offsets [\(start), \(end)] are not 0 <= begin <= end")
                }
                guard end <= dataBytes else {
                    throw bad(
                        "data_offsets [\(start), \(end)] run past the \(dataBytes) bytes of data after the header (truncated?)"
                    )
                }
                var count = 1
                for d in t.shape {
                    guard d >= 0 else { throw bad("shape \(t.shape) has a negative dimension") }
                    let (c, overflow) = count.multipliedReportingOverflow(by: d)
                    guard !overflow else { throw bad("shape \(t.shape) has more elements than Int can count") }
                    count = c
                }
                let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, bytes == end - start else {
                    throw bad(
                        "shape \(t.shape) of \(t.dtype) needs \(overflow ? "more than Int.max" : "\(bytes)") bytes, but data_offsets [\(start), \(end)] hold \(end - start)"
                    )
                }
                slots.append(Slot(name: t.name, dtype: t.dtype, shape: t.shape, count: count, start: start, end: end))
            }
            var expected = 0
            var previous: String?
            for s in slots.sorted(by: { ($0.start, $0.end, $0.name) < ($1.start, $1.end, $1.name) }) {
                if s.start < expected {
                    throw Error.malformed(
                        path: path,
                        reason: "tensor \(s.name) overlaps tensor \(previous ?? "?") (data_offsets begin at \(s.start))"
                    )
                }
                if s.start > expected {
                    throw Error.malformed(
                        path: path, reason: "\(s.start - expected) bytes before tensor \(s.name) belong to no tensor")
                }
                expected = s.end
                previous = s.name
            }
            guard expected == dataBytes else {
                throw Error.malformed(
                    path: path,
                    reason:
                        "\(dataBytes - expected) bytes after the last tensor belong to no tensor (appended to, or a tensor missing from the header)"
                )
            }
            return slots
        }
    }

    /// The checksum a file carries in its metadata, `checksum: "crc32c:<8 hex digits>"`: CRC-32C over a
    /// canonical text of the header (every metadata entry but the checksum, every tensor's name, dtype,
    /// shape and offsets) followed by the data. It covers what the header says, not how its JSON is
    /// spelled, so it is computed before the header is written and verified after it is parsed.
    public enum Checksum {
        /// The metadata key.
        public static let key = "checksum"

        static func format(_ value: UInt32) -> String {
            let hex = String(value, radix: 16)
            return "crc32c:" + String(repeating: "0", count: 8 - hex.count) + hex
        }

        static func parse(_ text: String, path: String) throws -> UInt32 {
            let digits = text.hasPrefix("crc32c:") ? text.dropFirst(7) : ""
            // Exactly as written (lower case): a flipped case bit is damage too.
            guard digits.count == 8, let v = UInt32(digits, radix: 16), format(v) == text else {
                throw Error.malformed(
                    path: path, reason: "metadata \(key) is '\(text.prefix(40))', not crc32c:<8 hex digits>")
            }
            return v
        }

        /// Length-prefixed fields, so that no two different headers give the same text.
        static func canonical(metadata: [String: String], tensors: [Header.Tensor]) -> [UInt8] {
            var out = Array("safetensors-checksum/1\n".utf8)
            func field(_ s: String) { out += Array("\(s.utf8.count):".utf8) + Array(s.utf8) + [0x20] }
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) where k != key {
                field("metadata")
                field(k)
                field(v)
                out.append(0x0A)
            }
            for t in tensors.sorted(by: { $0.name < $1.name }) {
                field("tensor")
                field(t.name)
                field(t.dtype)
                field(t.shape.map(String.init).joined(separator: ","))
                field(t.offsets.map(String.init).joined(separator: ","))
                out.append(0x0A)
            }
            return out
        }
    }
}
