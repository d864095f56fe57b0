import Foundation
import Testing

@testable import ProcessSupport

/// Server addresses from `--ps` and `TF_CONFIG`, parsed strictly.
@Suite("Endpoints and TF_CONFIG numbers")
struct EndpointTests {
    @Test("host:port with a name or IPv4 host and a port of digits in 1...65535 is taken")
    func good() throws {
        for (text, host, port) in [
            ("127.0.0.1:5556", "127.0.0.1", 5556), ("job-ps-0.default.svc:2222", "job-ps-0.default.svc", 2222),
            ("h_1:1", "h_1", 1), ("localhost:65535", "localhost", 65535),
        ] {
            let e = try Endpoint(parsing: text)
            #expect(e.host == host && e.port == port && e.description == text)
        }
    }

    @Test(
        "a port with a sign, spaces, letters, out of range, or missing, and a bad host, are refused saying why",
        arguments: [
            ("h:+5556", "port"), ("h:-1", "port"), ("h: 5556", "port"), ("h:5556 ", "port"), ("h:0", "port"),
            ("h:65536", "port"), ("h:0x10", "port"), ("h:", "port"), ("h", "no port"), (":5556", "no host"),
            ("a/b:1", "host"), ("a b:1", "host"), ("*:1", "host"), ("h:٣٣", "port"), ("", "no port"),
            ("h:000005556", "port"),
        ])
    func bad(text: String, words: String) {
        do {
            _ = try Endpoint(parsing: text)
            Issue.record("accepted '\(text)'")
        } catch let e as EndpointError {
            #expect("\(e)".contains(words), "\(e)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test(
        "IPv6, bracketed or bare, is refused at parse with a message that says IPv6 is not supported",
        arguments: ["[::1]:5556", "::1:5556", "[fe80::1%eth0]:1", "[::1]"])
    func ipv6(_ text: String) {
        do {
            _ = try Endpoint(parsing: text)
            Issue.record("accepted \(text)")
        } catch {
            #expect("\(error)".contains("IPv6") && "\(error)".contains("not supported"), "\(error)")
        }
        #expect(ipv6Problem(text) != nil)
        #expect(ipv6Problem("127.0.0.1") == nil && ipv6Problem("h:1") == nil)
    }

    @Test("a server listed twice is refused naming both entries; localhost and 127.0.0.1 are the same server")
    func duplicates() throws {
        #expect(try Endpoint.parseList(["a:1", "a:2", "b:1"], source: "--ps").count == 3)
        for list in [
            ["a:1", "a:1"], ["localhost:5556", "127.0.0.1:5556"], ["A:1", "a:1"],
            ["x:2", "127.0.0.1:9", "LOCALHOST:9"],
        ] {
            do {
                _ = try Endpoint.parseList(list, source: "--ps")
                Issue.record("accepted \(list)")
            } catch let e as EndpointError {
                #expect("\(e)".contains("--ps[") && "\(e)".contains("same server"), "\(e)")
            }
        }
    }

    @Test(
        "TF_CONFIG: a task index that is true, 1.5, a string or huge, a +P port, and one address twice are refused naming the field",
        arguments: [
            (#"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": true}}"#, "task.index"),
            (#"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": false}}"#, "task.index"),
            (#"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 1.5}}"#, "task.index"),
            (#"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": "1"}}"#, "task.index"),
            (#"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 1e30}}"#, "task.index"),
            (
                #"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 18446744073709551616}}"#,
                "task.index"
            ),
            (#"{"cluster": {"ps": ["a:+2222"]}, "task": {"type": "ps", "index": 0}}"#, "cluster.ps[0]"),
            (#"{"cluster": {"ps": ["[::1]:2222"]}, "task": {"type": "ps", "index": 0}}"#, "cluster.ps[0]"),
            (#"{"cluster": {"ps": ["a:1", "a:1"]}, "task": {"type": "ps", "index": 0}}"#, "cluster.ps[1]"),
            (
                #"{"cluster": {"ps": ["localhost:1", "127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}"#,
                "cluster.ps[1]"
            ),
            (
                #"{"cluster": {"ps": ["h:1"], "worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}"#,
                "cluster.worker[0]"
            ),
        ] as [(String, String)])
    func tfConfig(text: String, field: String) {
        do {
            _ = try ClusterSpec(json: text)
            Issue.record("accepted \(text)")
        } catch let e as ClusterSpecError {
            #expect(e.field == field, "\(e)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("TF_CONFIG: an integer index, also written 1.0, is taken")
    func integerIndex() throws {
        #expect(
            try ClusterSpec(json: #"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 1}}"#).taskIndex
                == 1)
        #expect(
            try ClusterSpec(json: #"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 1.0}}"#)
                .taskIndex == 1)
    }
}
