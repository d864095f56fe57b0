import Foundation
import Testing
import ZeroMQ

@testable import Transport

/// Authorized-keys files as editors and other systems write them.
@Suite("Authorized-keys files")
struct KeyFileTests {
    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keyfiles-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    @Test("CRLF line endings, a UTF-8 byte-order mark, and both together are read like plain lines")
    func windowsFiles() throws {
        try withDirectory { dir in
            let a = CurveKeyPair.z85(try CurveKeyPair().publicKey)
            let b = CurveKeyPair.z85(try CurveKeyPair().publicKey)
            let variants: [String: [UInt8]] = [
                "crlf": Array("# workers\r\n\(a) worker-0\r\n\r\n\(b)\r\n".utf8),
                "bom": [0xEF, 0xBB, 0xBF] + Array("\(a)\n\(b)\n".utf8),
                "bom-crlf": [0xEF, 0xBB, 0xBF] + Array("\(a)\r\n\(b)".utf8),
                "lone-cr": Array("\(a)\r\(b)\r".utf8),
            ]
            for (name, bytes) in variants {
                let path = "\(dir)/\(name)"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                #expect(try Admission.parse(path: path) == [a, b], "\(name)")
            }
            // A bad line is still named by its number in a CRLF file.
            let bad = "\(dir)/bad-crlf"
            try Data("\(a)\r\nnot-a-key\r\n".utf8).write(to: URL(fileURLWithPath: bad))
            do { _ = try Admission.parse(path: bad) } catch { #expect("\(error)".contains("line 2"), "\(error)") }
        }
    }

    @Test(
        "a file with no keys (empty, blank or comments only) is an error naming it",
        arguments: ["", "\n\n", "# none yet\n", "\u{FEFF}# bom only\r\n"])
    func noKeys(_ text: String) throws {
        try withDirectory { dir in
            let path = "\(dir)/authorized_keys"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Admission(path: path)
                Issue.record("a file with no keys was accepted")
            } catch let e as AdmissionError {
                #expect("\(e)".contains(path) && "\(e)".contains("lists no keys"), "\(e)")
            }
        }
    }

    @Test("a reload that finds no keys keeps the keys in force")
    func reloadToEmptyKeepsKeys() throws {
        try withDirectory { dir in
            let path = "\(dir)/authorized_keys"
            let a = CurveKeyPair.z85(try CurveKeyPair().publicKey)
            try Data("\(a)\n".utf8).write(to: URL(fileURLWithPath: path))
            let admission = try Admission(path: path)
            try Data("# emptied by mistake\n".utf8).write(to: URL(fileURLWithPath: path))
            #expect(throws: AdmissionError.self) { try admission.reload() }
            #expect(admission.count == 1 && admission.admits(a))
        }
    }
}
