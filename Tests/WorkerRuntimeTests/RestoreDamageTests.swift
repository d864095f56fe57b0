import Foundation
import SafeTensors
import Testing
import VariableScopes

@testable import WorkerRuntime

/// `worker --restore` over damaged server checkpoints.
@Suite("Restoring damaged checkpoints")
struct RestoreDamageTests {
    static func checkpoint(sequence: Int, value: Float) -> Data {
        SafeTensors.encode(
            [("w", [2], [value, value]), ("optimizer/w/m", [2], [0, 0])],
            metadata: ["format": "scoped-trainer-ps/2", "server": "ps-0", "sequence": "\(sequence)"], checksum: true)
    }

    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("restore-dmg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    @Test("a damaged newest file of a server is reported and its older file restored instead")
    func fallsBackWithWarning() throws {
        try withDirectory { dir in
            try Self.checkpoint(sequence: 1, value: 1).write(
                to: URL(fileURLWithPath: "\(dir)/ps-0-00000001.safetensors"))
            var newest = Self.checkpoint(sequence: 2, value: 2)
            newest[newest.count - 1] ^= 0x10
            try newest.write(to: URL(fileURLWithPath: "\(dir)/ps-0-00000002.safetensors"))
            let g = Graph(seed: 1)
            let w = try g.getVariable("w", shape: [2], initializer: .zeros)
            var warnings: [String] = []
            try Checkpoints.restore(g, from: dir, warn: { warnings.append($0) })
            #expect(Array(w.value) == [1, 1])
            #expect(
                warnings.count == 1 && warnings[0].contains("ps-0-00000002") && warnings[0].contains("ps-0-00000001"),
                "\(warnings)")
        }
    }

    @Test(
        "a variable two servers both hold is refused naming both files and the cause: other --ps orders, or two runs in one directory",
        arguments: [("1 of 2", "2 of 2", "--ps orders"), ("1 of 2", "1 of 2", "two runs"), ("", "", "two runs"), ("", "2 of 2", "two runs")])
    func twoCopies(first: String, second: String, cause: String) throws {
        try withDirectory { dir in
            for (server, value, placement) in [("ps-0", Float(1), first), ("ps-1", 2, second)] {
                try SafeTensors.encode(
                    [("w", [2], [value, value]), ("optimizer/w/m", [2], [0, 0])],
                    metadata: ["format": "scoped-trainer-ps/2", "server": server, "sequence": "1", "placement": placement],
                    checksum: true
                ).write(to: URL(fileURLWithPath: "\(dir)/\(server)-00000001.safetensors"))
            }
            let g = Graph(seed: 1)
            _ = try g.getVariable("w", shape: [2], initializer: .zeros)
            #expect { try Checkpoints.restore(g, from: dir) } throws: {
                "\($0)".contains("variable w is in both") && "\($0)".contains("ps-0-00000001") && "\($0)".contains("ps-1-00000001")
                    && "\($0)".contains(cause)
            }
        }
        // Optimizer slots are per server and never count; one file per name is fine.
        #expect(TensorSlice.duplicate(in: [("a", ["w", "optimizer/x"], nil), ("b", ["v", "optimizer/x"], nil)]) == nil)
        #expect(TensorSlice.duplicate(in: [("a", ["w"], nil), ("b", ["v", "w"], nil)])?.contains("a and b") == true)
    }

    @Test("when no file of a server can be used the error names the newest and says what is wrong (exit 65, not 66)")
    func noUsableFile() throws {
        try withDirectory { dir in
            var only = Self.checkpoint(sequence: 1, value: 1)
            only = only.prefix(only.count - 4)
            try only.write(to: URL(fileURLWithPath: "\(dir)/ps-0-00000001.safetensors"))
            let g = Graph(seed: 1)
            _ = try g.getVariable("w", shape: [2], initializer: .zeros)
            do {
                try Checkpoints.restore(g, from: dir)
                Issue.record("a truncated file was restored")
            } catch let e as Checkpoints.Error {
                #expect(!e.isMissingInput && "\(e)".contains("ps-0-00000001") && "\(e)".contains("truncated"), "\(e)")
            }
        }
    }

    @Test("a format-2 file whose checksum was lost (a flip in the word) is damaged, not trusted")
    func lostChecksum() throws {
        try withDirectory { dir in
            var data = Self.checkpoint(sequence: 1, value: 1)
            let range = try #require(data.range(of: Data("\"checksum\"".utf8)))
            data[range.lowerBound + 2] ^= 0x01  // "checksum" → "cieksum"? one bit of 'h'
            try data.write(to: URL(fileURLWithPath: "\(dir)/ps-0-00000001.safetensors"))
            let g = Graph(seed: 1)
            _ = try g.getVariable("w", shape: [2], initializer: .zeros)
            #expect(throws: Checkpoints.Error.self) { try Checkpoints.restore(g, from: dir) }
        }
    }
}

@Suite("Checkpoints replaced under a restore")
struct VanishedCheckpointTests {
    @Test("a restore that failed on a file which is gone since (a server rotated it away) is told apart from damage")
    func vanished() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vanish-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let here = "\(dir)/ps-0-00000002.safetensors"
        try Data([1]).write(to: URL(fileURLWithPath: here))
        let gone = "\(dir)/ps-0-00000001.safetensors"
        #expect(Checkpoints.vanished(gone, in: dir, warnings: []))
        #expect(!Checkpoints.vanished(here, in: dir, warnings: []))
        #expect(!Checkpoints.vanished(dir, in: dir, warnings: []))  // a whole-directory error is never a vanished file
        #expect(Checkpoints.vanished(here, in: dir, warnings: ["checkpoint \(gone) cannot be restored: x; using the older \(here) instead"]))
    }
}

@Suite("Naming an unreachable server")
struct UnreachableNameTests {
    @Test("the host of an endpoint is found for a name, an IPv4 or a bracketed IPv6 address; an IP literal resolves without DNS")
    func hosts() {
        #expect(RemoteExchange.host(of: "tcp://ps-0.example:2222") == "ps-0.example")
        #expect(RemoteExchange.host(of: "10.0.0.1:2222") == "10.0.0.1")
        #expect(RemoteExchange.host(of: "tcp://[::1]:2222") == "::1")
        #expect(RemoteExchange.host(of: "tcp://*:2222") == nil)
        #expect(RemoteExchange.resolves("127.0.0.1") && RemoteExchange.resolves("::1"))
    }
}
