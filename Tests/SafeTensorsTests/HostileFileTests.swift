import Foundation
import Testing

@testable import SafeTensors

/// Files built by hand, byte by byte, the way an adversary (or a torn write) would: every one must be
/// refused with an error naming what is wrong, never trap.
@Suite("safetensors: hostile and damaged files")
struct HostileFileTests {
    /// A file from a header given as JSON text and raw data bytes, with the header length stated (or the
    /// true one).
    static func file(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
        var out = Data()
        var n = (length ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: data)
        return out
    }

    static func floats(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    /// A crafted file, what it must be refused for (words the message holds), and a name for the test list.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: Data
        let words: [String]
        var testDescription: String { name }
    }

    static let two = floats([1, 2])
    static let cases: [Case] = [
        Case(
            name: "header length 0x7FFF_FFFF_FFFF_FFFF", bytes: file("{}", length: 0x7FFF_FFFF_FFFF_FFFF),
            words: ["header length"]),
        Case(name: "header length 2^64 - 1", bytes: file("{}", length: UInt64.max), words: ["header length"]),
        Case(name: "header length 0", bytes: file("{}", length: 0), words: ["header length 0"]),
        Case(name: "header length one past the file", bytes: file("{}", length: 3), words: ["past the end"]),
        Case(name: "shorter than 8 bytes", bytes: Data([1, 2, 3]), words: ["8-byte"]),
        Case(
            name: "negative data_offsets",
            bytes: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: two),
            words: ["a", "data_offsets"]),
        Case(
            name: "data_offsets near Int.max",
            bytes: file(
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775807]}}"#,
                data: two),
            words: ["a", "data_offsets", "past"]),
        Case(
            name: "data_offsets past Int.max",
            bytes: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#, data: two),
            words: ["header"]),
        Case(
            name: "shape [2^32, 2^32]",
            bytes: file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: two),
            words: ["a", "shape", "more elements than Int can count"]),
        Case(
            name: "shape [2^62, 4] overflowing the element count",
            bytes: file(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: two),
            words: ["a", "shape", "more elements"]),
        Case(
            name: "a negative dimension",
            bytes: file(#"{"a":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}}"#, data: two),
            words: ["a", "negative"]),
        Case(
            name: "a dimension that is true",
            bytes: file(#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, data: floats([1])),
            words: ["shape"]),
        Case(
            name: "a dimension of 1.5",
            bytes: file(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: floats([1])),
            words: ["header"]),
        Case(
            name: "a dimension written as a string",
            bytes: file(#"{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, data: floats([1])),
            words: ["shape"]),
        Case(
            name: "overlapping tensors",
            bytes: file(
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                data: two), words: ["overlaps"]),
        Case(
            name: "a gap between tensors",
            bytes: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: two),
            words: ["a", "belong to no tensor"]),
        Case(
            name: "bytes after the last tensor",
            bytes: file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: two),
            words: ["after the last tensor"]),
        Case(
            name: "a truncated data section",
            bytes: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Array(two.prefix(5))),
            words: ["a", "truncated"]),
        Case(
            name: "a byte count that does not match the shape",
            bytes: file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: two),
            words: ["a", "needs 12 bytes"]),
        Case(
            name: "an unknown dtype",
            bytes: file(#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, data: two),
            words: ["a", "unknown dtype F33"]),
        Case(
            name: "a known dtype this reader does not convert",
            bytes: file(#"{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#, data: two), words: ["a", "I32"]),
        Case(
            name: "three data_offsets",
            bytes: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}"#, data: two),
            words: ["a", "3 numbers"]),
        Case(
            name: "metadata that is not strings",
            bytes: file(#"{"__metadata__":{"step":7}}"#), words: ["__metadata__"]),
        Case(name: "a header that is a list", bytes: file("[1,2]"), words: ["header"]),
        Case(name: "a header that is not JSON", bytes: file("{\"a\":"), words: ["header"]),
        Case(
            name: "a NaN value",
            bytes: file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: floats([1, .nan])),
            words: ["w", "nan", "element 1"]),
        Case(
            name: "an infinite value",
            bytes: file(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: floats([-.infinity])),
            words: ["w", "-inf"]),
        Case(
            name: "an F64 value beyond float32's range",
            bytes: file(
                #"{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
                data: withUnsafeBytes(of: 1e300) { Array($0) }),
            words: ["w", "float32"]),
        Case(
            name: "a checksum that is not crc32c",
            bytes: file(#"{"__metadata__":{"checksum":"md5:00"}}"#), words: ["checksum"]),
    ]

    @Test("a crafted file is refused with a message naming what is wrong, never a trap", arguments: cases)
    func crafted(_ c: Case) throws {
        do {
            _ = try SafeTensors.decode(c.bytes, path: "crafted.safetensors")
            Issue.record("\(c.name) was accepted")
        } catch let e as SafeTensors.Error {
            let text = "\(e)"
            #expect(text.contains("crafted.safetensors"), "\(text)")
            for w in c.words { #expect(text.contains(w), "the message should name \(w): \(text)") }
        }
    }

    @Test("the metadata reader checks the header length too, without reading the data")
    func metadataOfCraftedFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-meta-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, c) in Self.cases.prefix(5).enumerated() {
            let path = dir.appendingPathComponent("\(i).safetensors").path
            try c.bytes.write(to: URL(fileURLWithPath: path))
            #expect(throws: SafeTensors.Error.self, "\(c.name)") { try SafeTensors.metadata(path) }
        }
        let good = dir.appendingPathComponent("good.safetensors").path
        try SafeTensors.write([("a", [1], [1])], to: good, metadata: ["k": "v"], checksum: true)
        #expect(try SafeTensors.metadata(good)["k"] == "v")
    }

    @Test("CRC-32C gives the standard check value, in one piece or many")
    func crc32cCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)  // RFC 3720 B.4
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var pieces = CRC32C()
        for chunk in stride(from: 0, to: bytes.count, by: 77) {
            pieces.update(Array(bytes[chunk..<min(chunk + 77, bytes.count)]))
        }
        #expect(pieces.value == CRC32C.checksum(bytes))
    }

    static let tensors: [(name: String, shape: [Int], scalars: [Float])] = [
        ("dense/kernel", [2, 3], [1, 2, 3, 4, 5, 6]), ("dense/bias", [3], [0.5, -0.5, 0.25]),
    ]

    @Test("a checksummed file reads back verified; one without a checksum reads back unverified")
    func checksumVerdict() throws {
        let with = try SafeTensors.decodeFile(SafeTensors.encode(Self.tensors, metadata: ["step": "4"], checksum: true))
        #expect(with.checksumVerified && with.metadata["step"] == "4")
        #expect(with.metadata[SafeTensors.Checksum.key]?.hasPrefix("crc32c:") == true)
        #expect(with.tensors["dense/kernel"]?.scalars == [1, 2, 3, 4, 5, 6])
        let without = try SafeTensors.decodeFile(SafeTensors.encode(Self.tensors, metadata: ["step": "4"]))
        #expect(!without.checksumVerified)
        #expect(without.tensors == with.tensors)
    }

    @Test(
        "every single-bit flip in a checksummed file is refused, or (a flip in the word checksum) leaves it unverified")
    func everyBitFlipIsCaught() throws {
        let good = SafeTensors.encode(Self.tensors, metadata: ["step": "4", "server": "ps-0"], checksum: true)
        var accepted: [Int] = []
        var unverified = 0
        for bit in 0..<(good.count * 8) {
            var bad = good
            bad[bit / 8] ^= UInt8(1 << (bit % 8))
            guard let file = try? SafeTensors.decodeFile(bad) else { continue }
            if file.checksumVerified { accepted.append(bit) } else { unverified += 1 }
        }
        #expect(accepted.isEmpty, "flips of bits \(accepted.prefix(10)) of \(good.count * 8) went unnoticed")
        // Only the 8 letters of the key can lose the checksum; a format that requires one catches those.
        #expect(unverified <= 8 * 8, "\(unverified)")
    }

    @Test("every truncation of a file is refused")
    func everyTruncationIsCaught() throws {
        for checksum in [true, false] {
            let good = SafeTensors.encode(Self.tensors, metadata: ["step": "4"], checksum: checksum)
            for n in 0..<good.count {
                #expect(throws: SafeTensors.Error.self, "cut to \(n) of \(good.count) bytes") {
                    try SafeTensors.decodeFile(good.prefix(n))
                }
            }
        }
    }

    @Test("a value changed after writing is caught by the checksum, naming the file")
    func checksumMismatchNamesTheFile() throws {
        var bad = SafeTensors.encode(Self.tensors, checksum: true)
        bad[bad.count - 1] ^= 0x01
        #expect(throws: SafeTensors.Error.self) { try SafeTensors.decodeFile(bad, path: "ps-0-00000002.safetensors") }
        do { _ = try SafeTensors.decodeFile(bad, path: "ps-0-00000002.safetensors") } catch {
            #expect("\(error)".contains("ps-0-00000002.safetensors is damaged"))
        }
    }
}
