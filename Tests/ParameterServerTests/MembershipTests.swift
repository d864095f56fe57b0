import Testing
import Wire

@testable import ParameterServer

/// Membership as a table: each row is an event for task index 0 and what it must lead to. No sockets, no clock.
@Suite("Membership")
struct MembershipTests {
    enum Event {
        case hello(incarnation: UInt64, peer: String, key: String? = nil, jobSize: Int = 1)
        case request(incarnation: UInt64, peer: String)
        case heartbeat(incarnation: UInt64, peer: String, key: String? = nil)
        case done
        case wait(Double)
        /// The server itself did not run for this long (`excuse`).
        case stall(Double)
        case tick
    }

    enum Expect: Equatable {
        case joined, reconnected, rejoined, admitted
        case refused(ErrorBody.Code)
        case lost, noChange
        case status(Membership.Status?)
    }

    struct Row: CustomStringConvertible {
        let title: String
        let steps: [(Event, Expect)]
        var description: String { title }
    }

    static let rows: [Row] = [
        Row(title: "a first hello joins; requests from its connection are admitted", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.request(incarnation: 1, peer: "a"), .admitted),
            (.tick, .status(.active)),
        ]),
        Row(title: "a request before hello is out of order", steps: [(.request(incarnation: 1, peer: "a"), .refused(.protocolOrder))]),
        Row(title: "the same process on a new connection says hello and goes on; its old connection is not bound any more", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.request(incarnation: 1, peer: "b"), .refused(.wrongIdentity)),
            (.hello(incarnation: 1, peer: "b"), .reconnected), (.request(incarnation: 1, peer: "b"), .admitted),
            (.request(incarnation: 1, peer: "a"), .refused(.wrongIdentity)),
        ]),
        Row(title: "the same incarnation with another CURVE key is refused", steps: [
            (.hello(incarnation: 1, peer: "a", key: "K1"), .joined), (.hello(incarnation: 1, peer: "b", key: "K2"), .refused(.wrongIdentity)),
        ]),
        Row(title: "another process cannot take a live index; once the holder is silent past the takeover bound it can", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.wait(1), .noChange), (.hello(incarnation: 2, peer: "b"), .refused(.indexTaken)),
            (.wait(5), .noChange), (.hello(incarnation: 2, peer: "b"), .rejoined), (.request(incarnation: 1, peer: "a"), .refused(.wrongIdentity)),
        ]),
        Row(title: "heartbeats from another connection of the same process keep the index alive: no takeover, not lost", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.wait(2), .noChange), (.heartbeat(incarnation: 1, peer: "hb"), .admitted),
            (.wait(2), .noChange), (.heartbeat(incarnation: 1, peer: "hb"), .admitted), (.wait(2), .noChange),
            (.hello(incarnation: 2, peer: "b"), .refused(.indexTaken)), (.tick, .status(.active)),
        ]),
        Row(title: "a heartbeat from another process or before hello is refused and keeps nothing alive", steps: [
            (.heartbeat(incarnation: 1, peer: "hb"), .refused(.protocolOrder)), (.hello(incarnation: 1, peer: "a"), .joined),
            (.heartbeat(incarnation: 9, peer: "hb"), .refused(.wrongIdentity)), (.wait(11), .noChange), (.tick, .lost),
        ]),
        Row(title: "silence past the worker timeout is lost; a word from it makes it active again", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.wait(11), .noChange), (.tick, .lost), (.tick, .noChange),
            (.heartbeat(incarnation: 1, peer: "hb"), .admitted), (.tick, .status(.active)),
        ]),
        Row(title: "the server's own pause is nobody's silence: only the time it ran counts", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.wait(1), .noChange), (.stall(60), .noChange), (.tick, .status(.active)),
            (.hello(incarnation: 2, peer: "b"), .refused(.indexTaken)), (.wait(10), .noChange), (.tick, .lost),
        ]),
        Row(title: "a lost index can be taken by a new process at once", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.wait(11), .noChange), (.tick, .lost), (.hello(incarnation: 2, peer: "b"), .rejoined),
        ]),
        Row(title: "a done index stays done: a new process is refused as done; the same one may say hello again", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.done, .status(.done)), (.hello(incarnation: 2, peer: "b"), .refused(.indexDone)),
            (.hello(incarnation: 1, peer: "c"), .reconnected), (.wait(20), .noChange), (.tick, .status(.done)),
        ]),
        Row(title: "a hello for a job of another size is refused", steps: [
            (.hello(incarnation: 1, peer: "a"), .joined), (.hello(incarnation: 1, peer: "a", jobSize: 3), .refused(.workerCount)),
        ]),
    ]

    @Test("membership transitions", arguments: rows)
    func table(_ row: Row) {
        var m = Membership(server: "t", workerTimeout: 10, takeoverAfter: 3)
        var now = 0.0
        for (k, (event, expected)) in row.steps.enumerated() {
            let got: Expect
            switch event {
            case .hello(let inc, let peer, let key, let size):
                do {
                    switch try m.hello(index: 0, incarnation: inc, name: "w\(inc)", jobSize: size, peer: Peer(id: Array(peer.utf8), key: key), now: now) {
                    case .joined: got = .joined
                    case .reconnected: got = .reconnected
                    case .rejoined: got = .rejoined
                    }
                } catch { got = .refused(error.code) }
            case .request(let inc, let peer):
                do {
                    _ = try m.request(index: 0, incarnation: inc, peer: Peer(id: Array(peer.utf8)), kind: .push, now: now)
                    got = .admitted
                } catch { got = .refused(error.code) }
            case .heartbeat(let inc, let peer, let key):
                do {
                    try m.heartbeat(index: 0, incarnation: inc, peer: Peer(id: Array(peer.utf8), key: key), now: now)
                    got = .admitted
                } catch { got = .refused(error.code) }
            case .done:
                m.done(index: 0)
                got = .status(m[0]?.status)
            case .wait(let s):
                now += s
                got = .noChange
            case .stall(let s):
                now += s
                m.excuse(s)
                got = .noChange
            case .tick:
                let changes = m.tick(now: now)
                if changes.isEmpty {
                    got = expected == .noChange ? .noChange : .status(m[0]?.status)
                } else {
                    got = .lost
                }
            }
            #expect(got == expected, "\(row.title): step \(k + 1) (\(event))")
        }
    }
}
