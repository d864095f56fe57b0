import Logging
import Testing
import VariableScopes
import Wire
import ZeroMQ

@testable import ParameterServer
@testable import WorkerRuntime

@Suite("Parameter server rules")
struct ParameterServerTests {
    func server(_ mode: SyncMode, staleness: Int? = nil) throws -> ParameterServer {
        let s = try ParameterServer(
            options: ServerOptions(
                endpoint: "inproc://ps-\(UInt64.random(in: 0...UInt64.max))", name: "t",
                mode: mode, staleness: staleness),
            context: try Context(), logger: Logger(label: "test"))
        s.expectedWorkers = 3
        for w in 0..<3 { s.workerNames[UInt32(w)] = "worker \(w)" }
        return s
    }

    @Test("async with staleness s: a pull for step k waits until every other active worker pushed k - 1 - s")
    func staleness() throws {
        let s = try server(.async, staleness: 2)
        s.lastPushed = [0: 5, 1: 2, 2: 4]
        #expect(s.ready(forStep: 5, worker: 0))  // needs 2
        #expect(!s.ready(forStep: 6, worker: 0))  // needs 3; worker 1 is at 2
        s.doneWorkers.insert(1)
        #expect(s.ready(forStep: 7, worker: 0))  // worker 1 is done and no longer counts; worker 2 at 4
        #expect(!s.ready(forStep: 8, worker: 0))
        let free = try server(.async)
        #expect(free.ready(forStep: 1000, worker: 0))
    }

    @Test("sync: pulls for step k wait for update k - 1; done workers stop counting, unless they contributed")
    func syncRules() throws {
        let s = try server(.sync)
        #expect(s.ready(forStep: 1, worker: 0) && !s.ready(forStep: 2, worker: 0))
        s.pending[1] = [0: [:], 2: [:]]
        #expect(s.needed(forStep: 1) == 3)
        s.doneWorkers.insert(1)
        #expect(s.needed(forStep: 1) == 2)
        s.pending[1]![1] = [:]
        #expect(s.needed(forStep: 1) == 3)
    }

    @Test("placement: largest first onto the least-loaded server; the same on every call")
    func placement() {
        let vars = [("a", 100), ("b", 60), ("c", 50), ("d", 10), ("e", 10)]
        let p = Placement(vars, servers: 2)
        #expect(p.owner == ["a": 0, "b": 1, "c": 1, "d": 0, "e": 0])  // e: a 110-110 tie goes to server 0
        #expect(p.load.reduce(0, +) == 230)
        #expect(Placement(vars.reversed(), servers: 2) == p)
        #expect(Set(Placement(vars, servers: 5).owner.values) == [0, 1, 2, 3, 4])
    }

    @Test("a partitioned variable's parts are placed like any variables, spreading over the servers")
    func partitionsSpread() throws {
        let g = Graph()
        try g.variableScope("emb", partitioner: .fixedSize(4)) { _ in try g.getVariable("table", shape: [400, 16]) }
        let p = Placement(variables: g.trainableVariables, servers: 4)
        #expect(p.owner.count == 4)
        #expect(Set(p.owner.values) == [0, 1, 2, 3])
        #expect(p.load.allSatisfy { $0 == 100 * 16 * 4 })
    }
}
