import Foundation
import Testing
import Wire
import ZeroMQ

@testable import Transport

/// Real ZeroMQ sockets on loopback, and the in-process hub the rules' tests use.
@Suite("Transports", .serialized)
struct TransportTests {
    @Test("a borrowed gradient frame goes to libzmq without a copy: the message points at the buffer itself")
    func borrowedIsZeroCopy() {
        let gradient = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1024)
        defer { gradient.deallocate() }
        let frame = Frame(external: UnsafeRawBufferPointer(gradient), owner: nil)
        #expect(frame.message.dataAddress == UnsafeRawPointer(gradient.baseAddress))
    }

    @Test("a reply's values share the variable's array: same address, and a later write copies, not the frame")
    func sharedIsZeroCopy() {
        var value: [Float] = (0..<256).map(Float.init)
        let address = value.withUnsafeBytes { $0.baseAddress }
        let message = Frame(floats: value).message
        #expect(message.dataAddress == address)
        value[0] = 99  // copy-on-write: the queued frame keeps the old values
        #expect(message.withUnsafeBytes { $0.load(as: Float.self) } == 0)
    }

    @Test("a request and its reply cross real sockets; received frames are read in place")
    func roundTrip() throws {
        let context = try Context()
        let server = try ZeroMQServerTransport(ZeroMQServerSettings(endpoint: "tcp://127.0.0.1:*"), context: context)
        let port = server.boundEndpoint.split(separator: ":").last!
        let client = try ZeroMQClientTransport(ZeroMQClientSettings(server: "127.0.0.1:\(port)"), context: context)
        try client.send(Envelope.frames(Header(kind: .ping, workerID: 3, requestID: 9), Names(names: ["x"]), tensors: [Frame(floats: [1, 2])]))
        let received = try #require(try server.receive(timeout: 5))
        let request = try Envelope(frames: received.frames[...])
        #expect(request.header.workerID == 3 && request.header.requestID == 9)
        #expect(request.tensors.first?.bytes == [Float(1), 2].withUnsafeBytes { Array($0) })
        #expect(server.send(Envelope.frames(Header(kind: .pong, requestID: 9), Names(names: [])), to: received.peer) == .sent)
        let reply = try #require(try client.receive(timeout: 5))
        #expect(try Envelope(frames: reply[...]).header.kind == .pong)
        client.close()
        server.close(lingerSeconds: 0)
    }

    @Test("a peer that never reads makes sends report a full queue instead of blocking the server")
    func slowReaderDoesNotBlock() throws {
        let context = try Context()
        var settings = ZeroMQServerSettings(endpoint: "tcp://127.0.0.1:*")
        settings.sendHighWaterMark = 4
        let server = try ZeroMQServerTransport(settings, context: context)
        let port = server.boundEndpoint.split(separator: ":").last!
        let client = try ZeroMQClientTransport(ZeroMQClientSettings(server: "127.0.0.1:\(port)"), context: context)
        try client.send(Envelope.frames(Header(kind: .ping), Names(names: [])))
        let peer = try #require(try server.receive(timeout: 5)).peer
        let big = Frame(floats: [Float](repeating: 1, count: 1 << 20))  // 4 MB a reply
        var outcome = SendOutcome.sent
        let started = Date()
        var sends = 0
        while outcome == .sent && sends < 1000 {  // bounded: TCP buffers and the 4-message queue fill long before
            outcome = server.send([Frame([1]), big], to: peer)
            sends += 1
        }
        #expect(outcome == .queueFull)
        #expect(Date().timeIntervalSince(started) < 5)
        client.close()
        server.close(lingerSeconds: 0)
    }

    @Test("authorized keys: Z85 keys one per line with comments; a bad line, a directory and a missing file are named")
    func authorizedKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try CurveKeyPair()
        let b = try CurveKeyPair()
        let good = dir + "/good"
        try "# workers\n\(CurveKeyPair.z85(a.publicKey))  # worker 0\n\n  \(CurveKeyPair.z85(b.publicKey))\n".write(
            toFile: good, atomically: true, encoding: .utf8)
        let admission = try Admission(path: good)
        #expect(admission.count == 2 && admission.admits(CurveKeyPair.z85(b.publicKey)))
        let bad = dir + "/bad"
        try "\(CurveKeyPair.z85(a.publicKey))\nnot-a-key\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(throws: AdmissionError.self) { try Admission(path: bad) }
        do { _ = try Admission(path: bad) } catch { #expect("\(error)".contains("line 2")) }
        do { _ = try Admission(path: dir) } catch { #expect("\(error)".contains("is a directory")) }
        do { _ = try Admission(path: dir + "/none") } catch { #expect("\(error)".contains("does not exist")) }
        // A reload with a broken file keeps the keys in force.
        try "garbage\n".write(toFile: good, atomically: true, encoding: .utf8)
        #expect(throws: AdmissionError.self) { try admission.reload() }
        #expect(admission.count == 2)
    }

    @Test("the in-process hub carries requests to the server and replies back to the right client")
    func inProcess() throws {
        let hub = InProcessHub()
        let server = hub.server()
        let (a, b) = (hub.client(), hub.client())
        try a.send([Frame([1])])
        try b.send([Frame([2])])
        let first = try #require(try server.receive(timeout: 1))
        let second = try #require(try server.receive(timeout: 1))
        _ = server.send([Frame([10])], to: second.peer)
        _ = server.send([Frame([20])], to: first.peer)
        #expect(try b.receive(timeout: 1)?.first?.bytes == [10])
        #expect(try a.receive(timeout: 1)?.first?.bytes == [20])
        #expect(try a.receive(timeout: 0.01) == nil)
    }
}
