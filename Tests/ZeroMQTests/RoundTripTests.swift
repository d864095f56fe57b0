import Foundation
import Testing

@testable import ZeroMQ

@Suite("ZeroMQ round trips")
struct RoundTripTests {
    /// A ROUTER bound to `endpoint` and a DEALER connected to it, with bounded waits.
    func pair(_ context: Context, _ endpoint: String) throws -> (router: Socket, dealer: Socket, address: String) {
        let router = try Socket(context, .router)
        try router.setRouterMandatory(true)
        try router.setReceiveTimeout(milliseconds: 5000)
        try router.setMaxMessageSize(64 << 20)
        try router.bind(endpoint)
        let address = try router.lastEndpoint
        let dealer = try Socket(context, .dealer)
        try dealer.setReceiveTimeout(milliseconds: 5000)
        try dealer.setRoutingID(Array("worker-0".utf8))
        try dealer.connect(address)
        return (router, dealer, address)
    }

    @Test(
        "multipart frames of 0, 1 and 16 MB bytes, DEALER to ROUTER and back",
        arguments: ["inproc://round-trip", "tcp://127.0.0.1:*"])
    func multipart(endpoint: String) throws {
        let context = try Context()
        let (router, dealer, _) = try pair(context, endpoint)
        let big = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try dealer.send([Message([]), Message([7]), Message(sharing: big)])
        let got = try router.receive()
        #expect(got.count == 4)  // identity + three frames
        #expect(got[0].bytes == Array("worker-0".utf8))
        #expect(got[1].count == 0)
        #expect(got[2].bytes == [7])
        #expect(got[3].count == 16 << 20)
        #expect(got[3].withUnsafeBytes { $0.elementsEqual(big) })

        // And back, routed by identity.
        try router.send([Message(got[0].bytes), Message([]), Message([9]), Message(sharing: big)])
        let back = try dealer.receive()
        #expect(back.map(\.count) == [0, 1, 16 << 20])
        #expect(back[2].withUnsafeBytes { $0.elementsEqual(big) })
    }

    @Test("a shared float array becomes a frame at the array's own address, and arrives bit-exact")
    func floats() throws {
        let context = try Context()
        let (router, dealer, _) = try pair(context, "inproc://floats")
        let values: [Float] = (0..<1000).map { Float($0) * 0.5 - 3 }
        let frame = Message(sharing: values)
        #expect(frame.dataAddress == values.withUnsafeBytes { $0.baseAddress })  // no copy was made
        try dealer.send([frame])
        let got = try router.receive()
        let decoded = got[1].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(decoded == values)
    }

    @Test("receive with nobody sending times out with a typed error")
    func receiveTimeout() throws {
        let context = try Context()
        let dealer = try Socket(context, .dealer)
        try dealer.setReceiveTimeout(milliseconds: 100)
        try dealer.connect("tcp://127.0.0.1:9")  // nothing listens on the discard port here
        let error = #expect(throws: ZMQError.self) { _ = try dealer.receive() }
        #expect(error?.kind == .timeout)
        #expect(error?.description.contains("tcp://127.0.0.1:9") == true)
    }

    @Test("a ROUTER sending to a peer that left fails with unreachablePeer, not a hang")
    func closedPeer() throws {
        let context = try Context()
        let (router, dealer, _) = try pair(context, "tcp://127.0.0.1:*")
        try dealer.send([Message([1])])
        let got = try router.receive()
        dealer.close()
        // The disconnect reaches the router asynchronously; retry a bounded number of times.
        var error: ZMQError?
        for _ in 0..<250 {
            do {
                try router.send([Message(got[0].bytes), Message([2])], dontWait: true)
                Thread.sleep(forTimeInterval: 0.02)
            } catch let e as ZMQError {
                error = e
                break
            }
        }
        #expect(error?.kind == .unreachablePeer)
        let unknown = #expect(throws: ZMQError.self) { try router.send([Message([0xde, 0xad]), Message([1])]) }
        #expect(unknown?.kind == .unreachablePeer)
    }

    @Test("binding a port in use names the endpoint")
    func bindInUse() throws {
        let context = try Context()
        let a = try Socket(context, .router)
        try a.bind("tcp://127.0.0.1:*")
        let endpoint = try a.lastEndpoint
        let b = try Socket(context, .router)
        let error = #expect(throws: ZMQError.self) { try b.bind(endpoint) }
        #expect(error?.description.contains(endpoint) == true)
        #expect(error?.function == "zmq_bind")
    }

    @Test("poll reports readiness within its bound")
    func poll() throws {
        let context = try Context()
        let (router, dealer, _) = try pair(context, "inproc://poll")
        #expect(try router.waitReadable(milliseconds: 50) == false)
        try dealer.send([[1, 2, 3]])
        #expect(try router.waitReadable(milliseconds: 2000) == true)
    }

    @Test("context shutdown wakes a blocked receive with .terminated")
    func shutdown() throws {
        let context = try Context()
        let socket = try Socket(context, .dealer)
        try socket.setReceiveTimeout(milliseconds: 10_000)
        try socket.bind("inproc://shutdown")
        let started = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) { context.shutdown() }
        let error = #expect(throws: ZMQError.self) { _ = try socket.receive() }
        #expect(error?.kind == .terminated)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("options: heartbeats, high-water marks, CURVE handshake over loopback")
    func curve() throws {
        #expect(Context.hasCurve)
        let context = try Context()
        let serverKeys = try CurveKeyPair()
        let clientKeys = try CurveKeyPair()
        let router = try Socket(context, .router)
        try router.setCurveServer(secretKey: serverKeys.secretKey)
        try router.setHeartbeat(intervalMilliseconds: 500, timeoutMilliseconds: 2000, ttlMilliseconds: 4000)
        try router.setSendHighWaterMark(16)
        try router.setReceiveHighWaterMark(16)
        try router.setReceiveTimeout(milliseconds: 5000)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try Socket(context, .dealer)
        try dealer.setCurveClient(serverKey: serverKeys.publicKey, keyPair: clientKeys)
        try dealer.setReceiveTimeout(milliseconds: 5000)
        try dealer.connect(try router.lastEndpoint)
        try dealer.send([Array("secret".utf8)])
        let got = try router.receive()
        #expect(got.last?.bytes == Array("secret".utf8))
    }

    @Test("CURVE keys round-trip through Z85 text; the public key derives from the secret one")
    func z85() throws {
        let pair = try CurveKeyPair()
        let text = CurveKeyPair.z85(pair.secretKey)
        #expect(text.count == 40)
        let again = try CurveKeyPair(secretZ85: text + "\n")
        #expect(again.secretKey == pair.secretKey && again.publicKey == pair.publicKey)
        #expect(try CurveKeyPair.decode(CurveKeyPair.z85(pair.publicKey)) == pair.publicKey)
        #expect(throws: ZMQError.self) { try CurveKeyPair.decode("too short") }
    }
}
