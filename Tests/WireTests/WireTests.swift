import Testing

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
        #expect(Array(bytes[0..<4]) == [0x50, 0x53, 2, MessageKind.push.rawValue])
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
        newer[2] = 3
        #expect(throws: WireError.unsupportedVersion(3)) { try decode(newer) }
        var older = good
        older[2] = 1
        #expect(throws: WireError.unsupportedVersion(1)) { try decode(older) }
        #expect(WireError.unsupportedVersion(3).code == .unsupportedVersion)
        var unknown = good
        unknown[3] = 77
        #expect(throws: WireError.unknownKind(77)) { try decode(unknown) }
    }

    @Test("envelopes check the announced tensor count; bodies decode or name the expected type")
    func envelopes() throws {
        let frames = Envelope.frames(
            Header(kind: .push), Names(names: ["a", "b"]), tensors: [Frame([1, 2, 3, 4]), Frame([5, 6, 7, 8])])
        let e = try Envelope(frames: frames[...])
        #expect(e.header.tensorCount == 2 && e.tensors.count == 2)
        #expect(try e.decode(Names.self).names == ["a", "b"])
        let bad = try Envelope(frames: Envelope.frames(Header(kind: .hello), body: Array("{]".utf8))[...])
        #expect(throws: WireError.self) { try bad.decode(Hello.self) }
        var h = Header(kind: .push)
        h.tensorCount = 3
        let lying = [Frame(h.encoded), Frame(Body.encode(Names(names: [])))]
        #expect(throws: WireError.tensorCountMismatch(header: 3, frames: 0, names: -1)) {
            try Envelope(frames: lying[...])
        }
        #expect(throws: WireError.tooFewFrames(1)) { try Envelope(frames: [Frame(h.encoded)][...]) }
    }

    @Test("bodies past their limit are refused before parsing, naming both sizes")
    func bodyLimit() throws {
        let e = try Envelope(frames: Envelope.frames(Header(kind: .pull), Names(names: ["a", "b", "c"]))[...])
        #expect(throws: WireError.bodyTooLarge(bytes: e.body.count, limit: 4)) { try e.decode(Names.self, limit: 4) }
        #expect(try e.decode(Names.self, limit: 1000).names == ["a", "b", "c"])
    }

    @Test("element counts from the wire: negative dimensions and overflowing products are nil, not a trap")
    func elementCounts() {
        #expect(Limits.elementCount([3, 4, 5]) == 60)
        #expect(Limits.elementCount([]) == 1)
        #expect(Limits.elementCount([0, Int.max]) == 0)
        #expect(Limits.elementCount([1 << 62, 4]) == nil)
        #expect(Limits.elementCount([Int.max, Int.max]) == nil)
        #expect(Limits.elementCount([-1, 4]) == nil)
        #expect(VariableSpec(name: "x", shape: [1 << 40, 1 << 40], dtype: "float32", initializer: .init(kind: "zeros"), seed: 0).count == nil)
    }

    @Test("requests and replies are told apart by kind; ping and pong are a pair")
    func kinds() {
        let requests = MessageKind.allCases.filter(\.isRequest)
        #expect(Set(requests) == [.hello, .register, .pull, .push, .done, .ping, .heartbeat])
        #expect(!MessageKind.pong.isRequest && !MessageKind.error.isRequest)
    }

    @Test("frames read owned bytes, owned floats and borrowed memory in place")
    func frames() {
        let floats: [Float] = [1, 2]
        #expect(Frame(floats: floats).count == 8)
        #expect(Frame(floats: floats).bytes == floats.withUnsafeBytes { Array($0) })
        let buffer: [UInt8] = [9, 8, 7]
        buffer.withUnsafeBytes { raw in
            let f = Frame(external: raw, owner: nil)
            #expect(f.count == 3)
            f.withUnsafeBytes { #expect($0.baseAddress == raw.baseAddress) }
        }
    }
}

@Suite("bfloat16 on the wire")
struct BFloat16Tests {
    @Test("float32 to bfloat16 rounds to nearest, ties to even; NaN stays NaN, infinities stay infinite")
    func rounding() {
        #expect(BFloat16.encode(1.0) == 0x3F80)
        #expect(BFloat16.encode(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even below
        #expect(BFloat16.encode(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, even above
        #expect(BFloat16.encode(Float(bitPattern: 0x3F80_8001)) == 0x3F81)  // just above the tie
        #expect(BFloat16.decode(BFloat16.encode(.nan)).isNaN)
        #expect(BFloat16.decode(BFloat16.encode(.infinity)) == .infinity)
        #expect(BFloat16.decode(BFloat16.encode(-2.5)) == -2.5)
        let values: [Float] = [0.1, -3.14159, 1e-3, 65504]
        let bytes = BFloat16.bytes(values)
        #expect(bytes.count == 8)
        var back = [Float](repeating: 0, count: 4)
        bytes.withUnsafeBytes { src in back.withUnsafeMutableBufferPointer { BFloat16.decode(src, into: $0) } }
        for (a, b) in zip(values, back) { #expect(abs(a - b) <= abs(a) / 128) }  // 8 significant bits
    }
}

@Suite("Frame slices")
struct FrameSliceTests {
    @Test("a slice of a received frame is a view of the same bytes with the same owner; of an owned one, a copy")
    func slices() {
        final class Owner {}
        let owner = Owner()
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 12, alignment: 16)
        defer { storage.deallocate() }
        for k in 0..<12 { storage[k] = UInt8(k) }
        let frame = Frame(external: UnsafeRawBufferPointer(storage), owner: owner)
        let view = frame.slice(4..<12)
        #expect(view.bytes == Array(4..<12))
        view.withUnsafeBytes { #expect($0.baseAddress == UnsafeRawPointer(storage.baseAddress! + 4)) }
        if case .external(_, let kept) = view.storage { #expect(kept === owner) } else { Issue.record("not a view") }
        let owned = Frame([9, 8, 7, 6]).slice(1..<3)
        #expect(owned.bytes == [8, 7])
    }

    @Test("a body of valid JSON with a number no field can take says so, not 'not valid JSON'")
    func outOfRangeNumber() throws {
        let big = Array(#"{"workerName": "w", "numWorkers": 9223372036854775808}"#.utf8)
        #expect { try big.withUnsafeBytes { try Body.decode(Hello.self, from: $0) } } throws: {
            "\($0)".contains("out of range for its field")
        }
        let broken = Array(#"{"workerName": "w", "numWorkers": "#.utf8)
        #expect { try broken.withUnsafeBytes { try Body.decode(Hello.self, from: $0) } } throws: {
            !"\($0)".contains("out of range")
        }
    }
}
