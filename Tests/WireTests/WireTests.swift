import Testing
import VariableScopes
import ZeroMQ

@testable import Wire

@Suite("Wire protocol")
struct WireTests {
    func decode(_ bytes: [UInt8]) throws -> Header { try bytes.withUnsafeBytes { try Header(decoding: $0) } }

    @Test("the 40-byte header round-trips every field, little-endian")
    func roundTrip() throws {
        let h = Header(
            kind: .push, workerID: 7, requestID: 0x0102_0304_0506_0708, step: 99, incarnation: .max, tensorCount: 3)
        let bytes = h.encoded
        #expect(bytes.count == Header.size)
        #expect(Array(bytes[0..<4]) == [0x50, 0x53, 1, MessageKind.push.rawValue])
        #expect(Array(bytes[8..<16]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(try decode(bytes) == h)
    }

    @Test("short, foreign, newer-version and unknown-kind headers are refused with distinct errors")
    func refusals() {
        let good = Header(kind: .pull).encoded
        #expect(throws: WireError.badHeaderSize(39)) { try decode(Array(good.prefix(39))) }
        var foreign = good
        foreign[0] = 0
        #expect(throws: WireError.badMagic) { try decode(foreign) }
        var newer = good
        newer[2] = 2
        #expect(throws: WireError.unsupportedVersion(2)) { try decode(newer) }
        #expect(WireError.unsupportedVersion(2).code == .unsupportedVersion)
        var unknown = good
        unknown[3] = 77
        #expect(throws: WireError.unknownKind(77)) { try decode(unknown) }
    }

    @Test("envelopes check the announced tensor count; bodies decode or name the expected type")
    func envelopes() throws {
        let frames = Envelope.frames(
            Header(kind: .push), Names(names: ["a", "b"]), tensors: [Message([1, 2, 3, 4]), Message([5, 6, 7, 8])])
        let e = try Envelope(frames: frames[...])
        #expect(e.header.tensorCount == 2 && e.tensors.count == 2)
        #expect(try e.decode(Names.self).names == ["a", "b"])
        let bad = try Envelope(frames: Envelope.frames(Header(kind: .hello), body: Array("{]".utf8))[...])
        #expect(throws: WireError.self) { try bad.decode(Hello.self) }
        var h = Header(kind: .push)
        h.tensorCount = 3
        let lying = [Message(h.encoded), Message(Body.encode(Names(names: [])))]
        #expect(throws: WireError.tensorCountMismatch(header: 3, frames: 0, names: -1)) {
            try Envelope(frames: lying[...])
        }
        #expect(throws: WireError.tooFewFrames(1)) { try Envelope(frames: [Message(h.encoded)][...]) }
    }

    @Test("a variable's spec carries what a server needs to recreate it bit for bit")
    func specs() throws {
        let g = Graph(seed: 5)
        let v = try g.getVariable("w", shape: [3, 2], initializer: .truncatedNormal(mean: 0, stddev: 0.5))
        let spec = VariableSpec(v, seed: 5)
        let again = try Body.encode(spec).withUnsafeBytes { try Body.decode(VariableSpec.self, from: $0) }
        let initializer = try #require(again.initializer.initializer(shape: again.shape))
        #expect(
            initializer.values(shape: again.shape, seed: again.seed, name: again.name, fanShape: again.fanShape)
                == Array(v.value))
        let t = try g.variable(initialValue: .init(shape: [2], scalars: [1.5, -2]), name: "t")
        #expect(
            VariableSpec(t, seed: 5).initializer.initializer(shape: [2])?.values(shape: [2], seed: 0, name: "x") == [
                1.5, -2,
            ])
        #expect(VariableSpec(t, seed: 5).initializer.initializer(shape: [3]) == nil)
    }
}
