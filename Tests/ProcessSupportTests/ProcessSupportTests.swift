import Foundation
import Testing

@testable import ProcessSupport

@Suite("TF_CONFIG, addresses and exit codes")
struct ProcessSupportTests {
    let cluster = #"{"cluster": {"chief": ["c:2222"], "ps": ["p0:2222", "p1:2222"], "worker": ["w0:2222", "w1:2222"]}, "#

    @Test("a worker's and a chief's task index and the worker count: the chief is worker 0")
    func workers() throws {
        let w = try ClusterSpec(json: cluster + #""task": {"type": "worker", "index": 1}, "rpc_layer": "grpc"}"#)
        #expect(w.numWorkers == 3 && w.workerIndex == 2 && w.ps == ["p0:2222", "p1:2222"])
        let c = try ClusterSpec(json: cluster + #""task": {"type": "chief", "index": 0}}"#)
        #expect(c.workerIndex == 0)
        let p = try ClusterSpec(json: cluster + #""task": {"type": "ps", "index": 1}}"#)
        #expect(p.workerIndex == nil && ClusterSpec.port(of: p.ownAddress) == 2222)
        #expect(try ClusterSpec.fromEnvironment([:]) == nil)
    }

    @Test(
        "a malformed TF_CONFIG names the field at fault",
        arguments: [
            ("{not json", nil), (#"{"cluster": {}}"#, "task"), (#"{"task": {"index": 0}}"#, "task.type"),
            (#"{"task": {"type": "boss", "index": 0}}"#, "task.type"),
            (#"{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 1}}"#, "task.index"),
            (#"{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": -1}}"#, "task.index"),
            (#"{"cluster": {"ps": ["nohost"]}, "task": {"type": "ps", "index": 0}}"#, "cluster.ps[0]"),
            (#"{"cluster": {"ps": ["a:99999"]}, "task": {"type": "ps", "index": 0}}"#, "cluster.ps[0]"),
            (#"{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}"#, "cluster.worker"),
        ] as [(String, String?)])
    func malformed(text: String, field: String?) {
        do {
            _ = try ClusterSpec(json: text)
            Issue.record("accepted \(text)")
        } catch let e as ClusterSpecError {
            #expect(e.field == field, "\(e)")
            #expect(e.description.hasPrefix("TF_CONFIG"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("host:port checks and bindable addresses")
    func addresses() {
        #expect(ClusterSpec.isHostPort("job-ps-0.default.svc:2222"))
        #expect(!ClusterSpec.isHostPort(":2222") && !ClusterSpec.isHostPort("a:0") && !ClusterSpec.isHostPort("a:b"))
        #expect(!ClusterSpec.isHostPort("") && !ClusterSpec.isHostPort(","))
        #expect(isBindableAddress("0.0.0.0") && isBindableAddress("127.0.0.1") && isBindableAddress("::1"))
        #expect(!isBindableAddress("999.1.1.1") && !isBindableAddress("not an address"))
        #expect(isLoopback("127.0.0.1") && isLoopback("localhost") && !isLoopback("0.0.0.0"))
    }

    @Test("exit codes follow restartPolicy: ExitCode: permanent below 128, retryable from 128")
    func exitCodes() {
        #expect(ExitStatus.usage.rawValue == 64)
        for s in ExitStatus.allCases where s != .success {
            #expect((s == .peerLost) == (s.rawValue >= 128), "\(s)")
        }
    }

    @Test("files named by flags: missing, a directory and not UTF-8 each say so")
    func files() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/bin", contents: Data([0xff, 0xfe, 0x00]))
        func problem(_ path: String) -> String {
            do {
                _ = try readSmallTextFile(path, flag: "--x")
                return ""
            } catch { return "\(error)" }
        }
        #expect(problem(dir + "/none").contains("does not exist"))
        #expect(problem(dir).contains("is a directory"))
        #expect(problem(dir + "/bin").contains("is not UTF-8"))
    }

    @Test("a stop flag set from another thread is seen")
    func stopFlag() async {
        let flag = StopFlag()
        #expect(!flag.isRequested)
        await Task.detached { flag.request() }.value
        #expect(flag.isRequested)
    }
}
