import Foundation
import Optimizers
import Testing
import Transport
import VariableScopes
import Wire

@testable import ParameterServer

/// The server's rules, driven directly through its state machine: fast, deterministic, no sockets.
@Suite("Parameter server rules")
struct ParameterServerTests {
    let w2 = [spec("w", [2])]

    @Test("registration creates a variable with the values every worker computes from the same spec")
    func registerValues() throws {
        let d = Driver(Driver.config(.async))
        _ = d.hello(0, of: 1)
        let g = Graph(seed: 1)
        let v = try g.getVariable("layer/kernel", shape: [3, 4], initializer: .truncatedNormal(mean: 0, stddev: 0.5))
        let s = VariableSpec(name: v.name, shape: v.shape, dtype: "float32", initializer: InitializerSpec(kind: "truncated_normal", b: 0.5), seed: 1)
        #expect(d.register(0, [s]).kinds == [.registered])
        #expect(d.core.value(of: "layer/kernel") == Array(v.value))
    }

    @Test("sync: gradients are averaged in worker order whatever the arrival order, and applied once")
    func syncAverage() {
        func run(_ order: [UInt32]) -> [Float] {
            let d = Driver(Driver.config(.sync))
            d.form(2, w2)
            for w in order {
                let e = d.push(w, step: 1, ["w": w == 0 ? [0.1, 0.3] : [0.7, 0.11]])
                #expect(e.kinds.first == .pushed)
            }
            return d.core.value(of: "w")!
        }
        let a = run([0, 1])
        #expect(a == run([1, 0]))
        // sgd, lr 0.5: w -= 0.5 * (g0 + g1) / 2, summed in worker order.
        #expect(a == [-0.5 * ((0.1 + 0.7) * 0.5), -0.5 * ((0.3 + 0.11) * 0.5)] as [Float])
    }

    @Test("sync: each variable is averaged over the gradients it received, whatever the others' count")
    func syncPartialPushes() {
        let d = Driver(Driver.config(.sync) { $0.optimizer = OptimizerConfig(kind: .sgd, learningRate: 1) })
        d.form(3, [spec("a", [1]), spec("b", [1]), spec("c", [1])])
        // Worker 0 pushes a, b, c; worker 1 a, b; worker 2 only a: every gradient is 1.
        _ = d.push(0, step: 1, ["a": [1], "b": [1], "c": [1]])
        _ = d.push(1, step: 1, ["a": [1], "b": [1]])
        _ = d.push(2, step: 1, ["a": [1]])
        #expect(d.core.syncStep == 1)
        // One rule for all: the mean of what came is 1, so each moves by the learning rate.
        #expect(d.core.value(of: "a") == [-1] && d.core.value(of: "b") == [-1] && d.core.value(of: "c") == [-1])
    }

    @Test("a tick that may not judge silence (requests still queued after a stall) loses nobody; the next one does")
    func judgeAfterDrain() {
        let d = Driver(Driver.config(.async) { $0.workerTimeout = 5 })
        d.form(2, [spec("w", [2])])
        #expect(d.core.tick(now: d.now + 60, judgeSilence: false).isEmpty || d.core.counters.workersLost == 0)
        #expect(d.core.counters.workersLost == 0)
        _ = d.core.tick(now: d.now + 60)
        #expect(d.core.counters.workersLost == 2)
    }

    @Test("sync: a worker's pull waits until its own gradient has been applied")
    func syncPullWaits() {
        let d = Driver(Driver.config(.sync))
        d.form(2, w2)
        #expect(d.pull(0, step: 1, ["w"]).kinds == [.values])
        _ = d.push(0, step: 1, ["w": [1, 1]])
        #expect(d.pull(0, step: 2, ["w"]).kinds == [])  // deferred
        let e = d.push(1, step: 1, ["w": [1, 1]])
        #expect(e.kinds == [.pushed, .values])
        #expect(e.values() == [[-0.5, -0.5]])
        #expect(e.replies[1].1.header.step == 1)  // the server's step, the worker's next label base
    }

    @Test("sync with backup workers: a step is applied once N - K pushed; the late one is dropped and counted")
    func backupWorkers() throws {
        let d = Driver(Driver.config(.sync) { $0.backupWorkers = 1 })
        d.form(3, w2)
        _ = d.push(0, step: 1, ["w": [2, 2]])
        #expect(d.core.syncStep == 0)
        _ = d.push(1, step: 1, ["w": [4, 4]])
        #expect(d.core.syncStep == 1)
        #expect(d.core.value(of: "w") == [-1.5, -1.5])
        let late = d.push(2, step: 1, ["w": [100, 100]])
        let ack = try late.replies[0].1.decode(Pushed.self)
        #expect(ack.outcome == .late)
        #expect(d.core.value(of: "w") == [-1.5, -1.5])
        #expect(d.core.counters.lateGradients == 1)
    }

    @Test("sync: a worker silent past --worker-timeout is declared lost and no longer waited for")
    func lostWorkerSync() {
        let d = Driver(Driver.config(.sync) { $0.workerTimeout = 5 })
        d.form(2, w2)
        _ = d.push(0, step: 1, ["w": [1, 1]])
        #expect(d.pull(0, step: 2, ["w"]).isEmpty)
        d.now += 4
        #expect(d.core.tick(now: d.now).kinds.isEmpty)
        _ = d.request(.ping, worker: 0, body: Body.encode(Names(names: [])))  // worker 0 stays alive
        d.now += 2
        let e = d.core.tick(now: d.now)
        #expect(d.core.counters.workersLost == 1)
        #expect(e.kinds == [.values])  // the step went ahead without worker 1
        #expect(d.core.syncStep == 1)
        #expect(d.done(0).exits == 1)  // every worker done or lost: the server exits
    }

    @Test("a worker that never joins is declared lost --worker-timeout after the first hello")
    func neverJoined() {
        let d = Driver(Driver.config(.async) { $0.workerTimeout = 5 })
        _ = d.hello(0, of: 2)
        _ = d.done(0)
        #expect(d.core.tick(now: d.now + 4).exits == 0)
        #expect(d.core.tick(now: d.now + 6).exits == 1)
    }

    @Test("async with staleness s: a pull for step k waits until every other active worker pushed k - 1 - s")
    func staleness() {
        let d = Driver(Driver.config(.async) { $0.staleness = 2 })
        d.form(3, w2)
        for (w, s) in [(0, 5), (1, 2), (2, 4)] as [(UInt32, UInt64)] { _ = d.push(w, step: s, ["w": [0, 0]]) }
        #expect(d.core.ready(forStep: 5, worker: 0))  // needs 2
        #expect(!d.core.ready(forStep: 6, worker: 0))  // needs 3; worker 1 is at 2
        _ = d.done(1)
        #expect(d.core.ready(forStep: 7, worker: 0))  // worker 1 is done and no longer counts; worker 2 at 4
        #expect(!d.core.ready(forStep: 8, worker: 0))
        let free = Driver(Driver.config(.async))
        free.form(1, w2)
        #expect(free.core.ready(forStep: .max, worker: 0))
    }

    @Test("exactly once: a re-sent push changes the variables once and gets the original's acknowledgement")
    func dedupe() throws {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        let first = d.push(0, step: 1, ["w": [1, 1]], id: 10)
        let again = d.push(0, step: 1, ["w": [1, 1]], id: 10)
        #expect(d.core.value(of: "w") == [-0.5, -0.5])
        #expect(try first.replies[0].1.decode(Pushed.self).outcome == .applied)
        let ack = try again.replies[0].1.decode(Pushed.self)
        #expect(ack.outcome == .applied && ack.duplicate)
        #expect(again.replies[0].1.header.requestID == 10)
        #expect(d.core.counters.duplicatePushes == 1)
        // The dedupe record survives a checkpoint and restart.
        let restarted = Driver(Driver.config(.async), restored: d.core.snapshot())
        _ = restarted.hello(0, of: 1)
        _ = restarted.push(0, step: 1, ["w": [1, 1]], id: 10)
        #expect(restarted.core.value(of: "w") == [-0.5, -0.5])
        _ = restarted.push(0, step: 2, ["w": [1, 1]], id: 11)
        #expect(restarted.core.value(of: "w") == [-1, -1])
    }

    @Test("a sync push that was only pending at the checkpoint is applied when re-sent after a restart")
    func dedupeSyncPending() {
        let d = Driver(Driver.config(.sync))
        d.form(2, w2)
        _ = d.push(0, step: 1, ["w": [1, 1]], id: 10)
        let restarted = Driver(Driver.config(.sync), restored: d.core.snapshot())
        _ = restarted.hello(0, of: 2)
        _ = restarted.hello(1, of: 2)
        _ = restarted.push(0, step: 1, ["w": [1, 1]], id: 10)
        _ = restarted.push(1, step: 1, ["w": [1, 1]])
        #expect(restarted.core.value(of: "w") == [-0.5, -0.5])
        #expect(restarted.core.counters.duplicatePushes == 0)
    }

    @Test("sync after a restart that lost updates: pushes labelled past the next step count towards it")
    func syncResumeAfterLoss() {
        let d = Driver(Driver.config(.sync))
        d.form(2, w2)
        for step in 1...3 as ClosedRange<UInt64> {
            _ = d.push(0, step: step, ["w": [1, 1]])
            _ = d.push(1, step: step, ["w": [1, 1]])
        }
        var state = d.core.snapshot()
        state.syncStep = 1  // as if the last checkpoint was taken after step 1
        let r = Driver(Driver.config(.sync), restored: state)
        _ = r.hello(0, of: 2, incarnation: 1000)
        _ = r.hello(1, of: 2, incarnation: 1001)
        _ = r.push(0, step: 4, ["w": [1, 1]], id: 100)
        #expect(r.pull(0, step: 5, ["w"]).isEmpty)
        let e = r.push(1, step: 4, ["w": [1, 1]], id: 100)
        #expect(r.core.syncStep == 2)
        #expect(e.kinds.contains(.values))
    }

    @Test("identity: another connection cannot act for a worker index; a live index cannot be taken")
    func identity() throws {
        let d = Driver(Driver.config(.async))
        d.form(2, w2)
        let spoof = d.push(0, step: 1, ["w": [1, 1]], peer: Peer(id: Array("intruder".utf8)))
        #expect(spoof.errors.first?.code == .wrongIdentity)
        #expect(d.core.value(of: "w") == [0, 0])
        let done = d.request(.done, worker: 1, body: Body.encode(Names(names: [])), peer: Peer(id: Array("intruder".utf8)))
        #expect(done.errors.first?.code == .wrongIdentity)
        let taken = d.hello(1, of: 2, incarnation: 5, peer: Peer(id: Array("second".utf8)))
        let error = try #require(taken.errors.first)
        #expect(error.code == .indexTaken)
        #expect(error.message.contains("worker 1") && error.message.contains("task index 1"))
        // After the holder has been silent past the takeover bound, a new process takes the index over.
        d.now += 10
        let again = d.hello(1, of: 2, incarnation: 5, peer: Peer(id: Array("second".utf8)))
        #expect(again.kinds == [.welcome])
    }

    @Test("the first hello fixes the worker count; a later one that disagrees is refused and changes nothing")
    func workerCount() {
        let d = Driver(Driver.config(.async))
        _ = d.hello(0, of: 2)
        #expect(d.hello(1, of: 1).errors.first?.code == .malformed)  // index 1 of 1
        #expect(d.hello(0, of: 3, incarnation: 9, peer: Peer(id: [1])).errors.first?.code == .workerCount)
        #expect(d.core.numWorkers == 2)
        let fixed = Driver(Driver.config(.async) { $0.numWorkers = 2 })
        #expect(fixed.hello(0, of: 1).errors.first?.code == .workerCount)
        #expect(fixed.core.numWorkers == 2)
    }

    @Test("numbers from the wire are checked against limits: overflowing shapes, fans, totals, counts, duplicates")
    func limits() {
        let d = Driver(Driver.config(.async) { $0.limits.maxTotalBytes = 12 * 100; $0.limits.maxVariables = 2 })
        _ = d.hello(0, of: 1)
        #expect(d.register(0, [spec("huge", [1 << 62, 4])]).errors.first?.code == .limitExceeded)
        var fan = spec("fan", [2, 2], "glorot_uniform")
        fan.fanShape = [Int.max, Int.max]
        #expect(d.register(0, [fan]).errors.first?.code == .limitExceeded)  // refused, not a trap
        #expect(d.register(0, [spec("neg", [-1, 4])]).errors.first?.code == .limitExceeded)
        #expect(d.register(0, [spec("big", [200])]).errors.first?.code == .limitExceeded)  // 2,400 bytes > 1,200
        #expect(d.register(0, [spec("a", [1]), spec("b", [1]), spec("c", [1])]).errors.first?.code == .limitExceeded)
        #expect(d.register(0, [spec("a", [1]), spec("a", [1])]).errors.first?.code == .malformed)
        #expect(d.register(0, [spec("bad", [2], "tensor")], values: [[1]]).errors.first?.code == .wrongTensorSize)
        #expect(d.register(0, [spec("bad", [2], "tensor")]).errors.first?.code == .wrongTensorSize)
        #expect(d.register(0, [spec("bad", [2], "tensor")], values: [[1, .nan]]).errors.first?.code == .badInitializer)
        #expect(d.register(0, [spec("inf", [2], "constant", a: .infinity)]).errors.first?.code == .badInitializer)
        #expect(d.core.variableNames == [])
        #expect(d.register(0, [spec("ok", [2])]).kinds == [.registered])
        #expect(d.pull(0, step: 1, ["ok", "ok"]).errors.first?.code == .malformed)
        let e = d.request(.hello, worker: 0, incarnation: 3, body: Body.encode(Hello(workerName: "x", numWorkers: 1 << 33)), peer: Peer(id: [9]))
        #expect(e.errors.first?.code == .limitExceeded)
        #expect(e.errors.first?.message.contains("--max-workers") == true)
    }

    @Test("registration of new variables closes at the first update; existing ones can still be checked")
    func registrationCloses() {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        _ = d.push(0, step: 1, ["w": [1, 1]])
        #expect(d.register(0, [spec("junk", [4])]).errors.first?.code == .registrationClosed)
        #expect(d.register(0, w2).kinds == [.registered])
        #expect(d.register(0, [spec("w", [3])]).errors.first?.code == .shapeConflict)
    }

    @Test("sync: a push is acknowledged as queued, not applied; its step is applied once every worker pushed")
    func syncQueued() throws {
        let d = Driver(Driver.config(.sync))
        d.form(2, w2)
        let first = d.push(0, step: 1, ["w": [1, 1]])
        #expect(try first.replies[0].1.decode(Pushed.self).outcome == .queued)
        #expect(d.core.value(of: "w") == [0, 0] && d.core.syncStep == 0)
        _ = d.push(1, step: 1, ["w": [1, 1]])
        #expect(d.core.value(of: "w") == [-0.5, -0.5] && d.core.syncStep == 1)
        // The re-sent push of a step still queued is acknowledged as queued, and as a duplicate.
        _ = d.push(0, step: 2, ["w": [1, 1]], id: 50)
        let again = try d.push(0, step: 2, ["w": [1, 1]], id: 50).replies[0].1.decode(Pushed.self)
        #expect(again.outcome == .queued && again.duplicate)
    }

    @Test("sync: a step whose averaged gradient is not finite is dropped, counted, and told to the workers that contributed")
    func syncDroppedStepReported() throws {
        let d = Driver(Driver.config(.sync) { $0.optimizer = OptimizerConfig(kind: .adam, learningRate: 0.1) })
        d.form(2, w2)
        // Each gradient is finite; their sum overflows.
        _ = d.push(0, step: 1, ["w": [3e38, 1]])
        _ = d.push(1, step: 1, ["w": [3e38, 1]])
        #expect(d.core.value(of: "w") == [0, 0] && d.core.syncStep == 1)
        #expect(d.core.counters.droppedSyncSteps == 1)
        for w in [UInt32(0), 1] {
            let values = d.pull(w, step: 2, ["w"])
            #expect(try values.replies[0].1.decode(ValuesBody.self).droppedSteps == 1, "worker \(w)")
            // Told once.
            #expect(try d.pull(w, step: 2, ["w"]).replies[0].1.decode(ValuesBody.self).droppedSteps == nil)
        }
    }

    @Test("sync: a crash loses the gradients queued for the step in progress; after the restart the step goes on from new pushes")
    func syncCrashLosesQueued() throws {
        let d = Driver(Driver.config(.sync))
        d.form(2, w2)
        _ = d.push(0, step: 1, ["w": [1, 1]])  // acknowledged as queued
        let saved = d.core.snapshot()  // what a checkpoint holds at that moment: no queued gradients
        let after = Driver(Driver.config(.sync), restored: saved)
        _ = after.hello(0, of: 2)
        _ = after.hello(1, of: 2)
        // Worker 0 is not asked again (its push was acknowledged): its pull is answered, and its next push
        // counts towards the step together with worker 1's.
        #expect(after.pull(0, step: 2, ["w"]).kinds == [.values])
        _ = after.push(1, step: 1, ["w": [1, 1]])
        #expect(after.core.syncStep == 0)
        _ = after.push(0, step: 2, ["w": [3, 3]])
        #expect(after.core.syncStep == 1 && after.core.value(of: "w") == [-1, -1])
    }

    @Test("an error reply says whether trying again helps, and names the request even when the body is malformed")
    func errorReplies() throws {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        let refused = d.push(0, step: 1, ["w": [.nan, 1]])
        #expect(refused.errors.first?.canRetry == true)
        let conflict = d.register(0, [spec("w", [3])])
        #expect(conflict.errors.first?.code == .shapeConflict && conflict.errors.first?.canRetry == false)
        // A header that reads, with a body that does not: the reply carries the request's id.
        let h = Header(kind: .push, workerID: 0, requestID: 4242, step: 1, incarnation: 1000)
        let effects = d.core.receive([Frame(h.encoded), Frame(Array("{not json".utf8))], from: Driver.peer(0), now: d.now)
        #expect(effects.replies.first?.1.header.requestID == 4242)
        #expect(effects.errors.first != nil)
    }

    @Test("a push that would make Adam's state non-finite is refused whole; training goes on normally after")
    func nonFinite() {
        let d = Driver(Driver.config(.async) { $0.optimizer = OptimizerConfig(kind: .adam, learningRate: 0.1) })
        d.form(1, [spec("a", [2]), spec("b", [2])])
        let e = d.push(0, step: 1, ["a": [1, 1], "b": [3e38, 1]])
        #expect(e.errors.first?.code == .nonFinite)
        #expect(d.core.value(of: "a") == [0, 0] && d.core.value(of: "b") == [0, 0])
        #expect(d.push(0, step: 2, ["a": [1, 1], "b": [1, 1]]).kinds == [.pushed])
        #expect(d.core.value(of: "a")!.allSatisfy { $0.isFinite && $0 < 0 })
        #expect(d.push(0, step: 3, ["a": [.nan, 1], "b": [1, 1]]).errors.first?.code == .nonFinite)
    }

    @Test("a refused push leaves Adam's slots as they were: the next updates match a server that never saw it")
    func refusedPushLeavesSlots() {
        let config = Driver.config(.async) { $0.optimizer = OptimizerConfig(kind: .adam, learningRate: 0.1) }
        let (a, b) = (Driver(config), Driver(config))
        for d in [a, b] { d.form(1, [spec("a", [9]), spec("b", [9])]) }
        let g = (0..<9).map { Float($0) - 4 }
        for d in [a, b] { _ = d.push(0, step: 1, ["a": g, "b": g]) }
        var poisoned = g
        poisoned[8] = 3e38  // finite, but its square overflows the second slot
        #expect(a.push(0, step: 2, ["a": g, "b": poisoned]).errors.first?.code == .nonFinite)
        for d in [a, b] { _ = d.push(0, step: 2, ["a": g.reversed(), "b": g]) }
        #expect(a.core.value(of: "a") == b.core.value(of: "a") && a.core.value(of: "b") == b.core.value(of: "b"))
    }

    @Test("a worker's name list is parsed once and reused only for the same bytes; a changed list is checked again")
    func namesReused() {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        #expect(d.pull(0, step: 1, ["w"]).kinds == [.values])
        #expect(d.pull(0, step: 1, ["w"]).kinds == [.values])
        #expect(d.pull(0, step: 1, ["w", "w"]).errors.first?.code == .malformed)
        #expect(d.pull(0, step: 1, ["nope"]).errors.first?.code == .unknownVariable)
        #expect(d.push(0, step: 1, ["w": [1, 1]]).kinds == [.pushed])
        #expect(d.push(0, step: 2, ["w": [1, 1, 1]]).errors.first?.code == .wrongTensorSize)
        #expect(d.push(0, step: 3, ["w": [1, 1]]).kinds == [.pushed])
        #expect(d.core.value(of: "w") == [-1, -1])
        // A push naming nothing is acknowledged, changes nothing and is not counted as an update.
        let updates = d.core.updates
        #expect(d.push(0, step: 4, [:]).kinds == [.pushed])
        #expect(d.core.updates == updates && d.core.value(of: "w") == [-1, -1])
    }

    @Test("a packing worker sends a push's tensors in one frame and gets values in one; others keep a frame each")
    func packedTensors() {
        let d = Driver(Driver.config(.async))
        let specs = [spec("a", [2]), spec("b", [3])]
        let hello = d.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "w0", numWorkers: 2, packed: true)))
        #expect(try! hello.replies[0].1.decode(Welcome.self).packed == true)
        #expect(try! d.hello(1, of: 2).replies[0].1.decode(Welcome.self).packed == nil)
        _ = d.register(0, specs)
        // Names in the body's order; the frame holds a's 2 floats then b's 3.
        let packed = d.request(.push, worker: 0, step: 1, body: Body.encode(Names(names: ["b", "a"])), tensors: [[1, 2, 3, 4, 5]])
        #expect(packed.kinds == [.pushed])
        #expect(d.core.value(of: "b") == [-0.5, -1, -1.5] && d.core.value(of: "a") == [-2, -2.5])
        let values = d.pull(0, step: 2, ["a", "b"])
        #expect(values.values() == [[-2, -2.5, -0.5, -1, -1.5]])
        #expect(d.pull(1, step: 2, ["a", "b"]).values() == [[-2, -2.5], [-0.5, -1, -1.5]])
        // Frames of the wrong total change nothing; the tensors' bytes may be cut anywhere (chunks).
        let short = d.request(.push, worker: 0, step: 2, body: Body.encode(Names(names: ["a", "b"])), tensors: [[1, 2, 3, 4]])
        #expect(short.errors.first?.code == .wrongTensorSize)
        #expect(short.errors.first?.message.contains("carry 16 bytes, but the 2 tensors named need 20") == true)
        let long = d.request(.push, worker: 0, step: 2, body: Body.encode(Names(names: ["a", "b"])), tensors: [[1, 2, 3], [4, 5, 6]])
        #expect(long.errors.first?.code == .wrongTensorSize)
        #expect(d.core.value(of: "a") == [-2, -2.5])
        let cut = d.request(.push, worker: 0, step: 2, body: Body.encode(Names(names: ["a", "b"])), tensors: [[1], [2, 3], [4, 5]])
        #expect(cut.kinds == [.pushed])
        #expect(d.core.value(of: "a") == [-2.5, -3.5] && d.core.value(of: "b") == [-2, -3, -4])
        #expect(d.push(1, step: 1, ["a": [2, 2], "b": [0, 0, 0]]).kinds == [.pushed])
        #expect(d.core.value(of: "a") == [-3.5, -4.5])
        // A packing worker may also send a frame per tensor (what it does past the server's frame limit).
        #expect(d.push(0, step: 3, ["a": [2, 2], "b": [0, 0, 0]]).kinds == [.pushed])
        #expect(d.core.value(of: "a") == [-4.5, -5.5])
    }

    @Test("every worker of a job partitions alike: a hello with another partitioning is refused, and the job's is checkpointed")
    func partitioning() throws {
        let d = Driver(Driver.config(.async))
        let first = d.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "w0", numWorkers: 2, partitioning: "fixed_size:2")))
        #expect(first.kinds == [.welcome])
        let other = d.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "w1", numWorkers: 2, partitioning: "none")))
        #expect(other.errors.first?.code == .settingsConflict)
        #expect(other.errors.first?.message.contains("--partitioner") == true)
        let long = String(repeating: "x", count: 300)
        #expect(d.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "w1", numWorkers: 2, partitioning: long))).errors.first?.code == .malformed)
        // A worker that says nothing partitions nothing: refused too.
        #expect(d.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "w1", numWorkers: 2))).errors.first?.code == .settingsConflict)
        #expect(d.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "w1", numWorkers: 2, partitioning: "fixed_size:2"))).kinds == [.welcome])
        let state = d.core.snapshot()
        #expect(state.partitioning == "fixed_size:2")
        let data = CheckpointStore.encode(state, config: d.core.config, sequence: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("part-\(UUID().uuidString).safetensors").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try CheckpointStore.read(path: path, limits: ServerLimits()).state.partitioning == "fixed_size:2")
    }

    @Test("every worker lists the servers in the same order: a hello placing this server elsewhere is refused; the placement survives a restart")
    func placement() throws {
        let d = Driver(Driver.config(.sync))
        let hello = { (w: UInt32, placement: String?) in
            d.request(.hello, worker: w, body: Body.encode(Hello(workerName: "w\(w)", numWorkers: 2, placement: placement)))
        }
        #expect(hello(0, "2 of 3").kinds == [.welcome])
        let other = hello(1, "3 of 3")
        #expect(other.errors.first?.code == .settingsConflict)
        #expect(other.errors.first?.message.contains("server 2 of 3") == true && other.errors.first?.message.contains("same order") == true)
        #expect(hello(1, "2 of 2").errors.first?.code == .settingsConflict)
        #expect(hello(1, String(repeating: "9", count: 40)).errors.first?.code == .malformed)
        // An older worker that names no placement is not refused for it.
        #expect(hello(1, nil).kinds == [.welcome])
        let data = CheckpointStore.encode(d.core.snapshot(), config: d.core.config, sequence: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("place-\(UUID().uuidString).safetensors").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let restored = try CheckpointStore.read(path: path, limits: ServerLimits()).state
        #expect(restored.placement == "2 of 3")
        let again = Driver(Driver.config(.sync), restored: restored)
        let late = again.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "w1", numWorkers: 2, placement: "1 of 3")))
        #expect(late.errors.first?.code == .settingsConflict)
    }

    @Test("a part's slice must fit its whole; its record survives a checkpoint")
    func slices() throws {
        let d = Driver(Driver.config(.async))
        _ = d.hello(0, of: 1)
        var bad = spec("w/part_1", [3, 2])
        bad.slice = SliceSpec(fullName: "w", fullShape: [4, 2], offset: [2, 0])
        #expect(d.register(0, [bad]).errors.first?.code == .malformed)
        var hostile = spec("w/part_1", [3, 2])
        hostile.slice = SliceSpec(fullName: "w", fullShape: [Int.max, Int.max], offset: [Int.max, 0])
        #expect(d.register(0, [hostile]).errors.first?.code == .malformed)
        var good = spec("w/part_1", [2, 2])
        good.slice = SliceSpec(fullName: "w", fullShape: [4, 2], offset: [2, 0])
        #expect(d.register(0, [good]).kinds == [.registered])
        let data = CheckpointStore.encode(d.core.snapshot(), config: d.core.config, sequence: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("slice-\(UUID().uuidString).safetensors").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try CheckpointStore.read(path: path, limits: ServerLimits()).state.variables.first?.slice == good.slice)
    }

    @Test("frame limits: a server packs values only up to the worker's limit, chunks a tensor past it, and tells its own in the welcome")
    func packedLimits() {
        let d = Driver(Driver.config(.async) { $0.limits.maxFrameBytes = 4096 })
        let hello = d.request(
            .hello, worker: 0, body: Body.encode(Hello(workerName: "w0", numWorkers: 1, packed: true, maxFrameBytes: 1024)))
        #expect(try! hello.replies[0].1.decode(Welcome.self).maxFrameBytes == 4096)
        _ = d.register(0, [spec("a", [200]), spec("b", [100]), spec("c", [300])])
        // 1,200 bytes packed would pass the worker's 1,024: a frame per tensor.
        #expect(d.pull(0, step: 1, ["a", "b"]).values().map(\.count) == [200, 100])
        #expect(d.pull(0, step: 1, ["a"]).values().map(\.count) == [200])
        // c alone is 1,200 bytes: chunks of at most 1,024.
        #expect(d.pull(0, step: 1, ["c"]).values().map(\.count) == [256, 44])
        // A worker claiming a tiny limit gets chunks of the server's smallest (no frame per value).
        let tiny = d.request(
            .hello, worker: 0, body: Body.encode(Hello(workerName: "w0", numWorkers: 1, packed: true, maxFrameBytes: 4)))
        #expect(tiny.kinds == [.welcome])
        #expect(d.pull(0, step: 1, ["c"]).values().map(\.count) == [256, 44])
    }

    @Test("packed bf16: one frame of 2 bytes per value each way; the server keeps float32")
    func packedBF16() {
        let d = Driver(Driver.config(.async) { $0.wireDTypes = [.float32, .bf16] })
        _ = d.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "w0", numWorkers: 1, wireDType: .bf16, packed: true)))
        _ = d.register(0, [spec("a", [2]), spec("b", [1])])
        let grads: [Float] = [1, 2, 4]
        var bytes = [UInt8](repeating: 0, count: 6)
        grads.withUnsafeBufferPointer { g in bytes.withUnsafeMutableBytes { BFloat16.encode(g, into: $0) } }
        let h = Header(kind: .push, workerID: 0, requestID: 50, step: 1, incarnation: 1000)
        let push = d.core.receive(Envelope.frames(h, body: Body.encode(Names(names: ["a", "b"])), tensors: [Frame(bytes)]), from: Driver.peer(0), now: d.now)
        #expect(push.kinds == [.pushed])
        #expect(d.core.value(of: "a") == [-0.5, -1] && d.core.value(of: "b") == [-2])
        let reply = d.pull(0, step: 2, ["a", "b"]).replies[0].1
        #expect(reply.tensors.count == 1 && reply.tensors.first!.count == 6)
    }

    @Test("--clip-norm scales a push to the global norm over its variables, as clip_by_global_norm")
    func clipNorm() {
        let d = Driver(Driver.config(.async) { $0.clipNorm = 1 })
        d.form(1, [spec("a", [1]), spec("b", [1])])
        _ = d.push(0, step: 1, ["a": [3], "b": [4]])  // norm 5: scaled by 1/5
        #expect(d.core.value(of: "a") == [-0.5 * 3 * 0.2] && d.core.value(of: "b") == [-0.5 * 4 * 0.2])
    }

    @Test("checkpoints are asked for every N updates and every S seconds, and only after a change")
    func checkpointTimers() {
        let d = Driver(Driver.config(.async) { $0.checkpointEvery = 2; $0.checkpointSeconds = 10 })
        d.form(1, w2)
        #expect(d.core.tick(now: d.now + 20).checkpoints == 0)  // nothing changed
        _ = d.push(0, step: 1, ["w": [1, 1]])
        #expect(d.core.tick(now: d.now).checkpoints == 0)
        _ = d.push(0, step: 2, ["w": [1, 1]])
        #expect(d.core.tick(now: d.now).checkpoints == 1)
        d.core.checkpointWritten(now: d.now)
        _ = d.push(0, step: 3, ["w": [1, 1]])
        #expect(d.core.tick(now: d.now + 5).checkpoints == 0)
        #expect(d.core.tick(now: d.now + 11).checkpoints == 1)
    }

    @Test("malformed requests get error replies naming the problem, and the rules keep serving")
    func malformed() {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        let peer = Driver.peer(0)
        var bad: [[Frame]] = [[Frame([1, 2, 3])], [Frame(Array(repeating: 0, count: 40)), Frame([])]]
        var h = Header(kind: .push, workerID: 0, requestID: 5, incarnation: 1000)
        h.tensorCount = 1
        bad.append([Frame(h.encoded), Frame(Body.encode(Names(names: ["w"]))), Frame([1, 2, 3])])  // wrong size
        bad.append(Envelope.frames(Header(kind: .values, workerID: 0), Names(names: [])))  // a reply
        bad.append(Envelope.frames(Header(kind: .pull, workerID: 0, incarnation: 1000), body: Array("{".utf8)))
        for frames in bad {
            let e = d.core.receive(frames, from: peer, now: d.now)
            #expect(e.kinds == [.error])
        }
        #expect(d.push(0, step: 1, ["w": [1, 1]]).kinds == [.pushed])
        #expect(d.core.counters.errorsTotal == bad.count)
    }

    @Test("a restarted worker index resumes from its last pushed step (async) or the server's step (sync)")
    func resume() throws {
        let d = Driver(Driver.config(.async) { $0.workerTimeout = 5 })
        d.form(1, w2)
        _ = d.push(0, step: 7, ["w": [1, 1]])
        d.now += 10
        let e = d.hello(0, of: 1, incarnation: 42, peer: Peer(id: Array("new".utf8)))
        #expect(try e.replies[0].1.decode(Welcome.self).resumeStep == 7)
    }

    @Test("a hello for a finished task index from a new process is refused as done; the same process is welcomed")
    func doneIndex() throws {
        let d = Driver(Driver.config(.async) { $0.keepServing = true })
        d.form(2, w2)
        _ = d.push(1, step: 9, ["w": [1, 1]])
        #expect(d.done(1).kinds == [.goodbye])
        let late = d.hello(1, of: 2, incarnation: 99, peer: Peer(id: Array("new".utf8)))
        let error = try #require(late.errors.first)
        #expect(error.code == .indexDone)
        #expect(error.message.contains("task index 1 finished its training"), "\(error.message)")
        #expect(d.core.workerCounts.done == 1)
        // The process that said done may still say hello again (a reconnect): nothing changes for it.
        #expect(d.hello(1, of: 2).kinds == [.welcome])
        #expect(d.core.workerCounts.done == 1)
    }

    @Test("a shunned peer (one that stopped reading) is ignored from then on")
    func shun() {
        let d = Driver(Driver.config(.async))
        d.form(1, w2)
        d.core.shun(Driver.peer(0))
        #expect(d.pull(0, step: 1, ["w"]).isEmpty)
    }
}

@Suite("Negotiated settings")
struct NegotiationTests {
    @Test("bf16 workers push and pull half the bytes; the server applies them to float32 masters")
    func bf16() throws {
        let d = Driver(Driver.config(.async))
        let hello = Body.encode(Hello(workerName: "worker 0", numWorkers: 1, wireDType: .bf16))
        let welcome = d.request(.hello, worker: 0, body: hello)
        #expect(try welcome.replies[0].1.decode(Welcome.self).wireDType == .bf16)
        _ = d.register(0, [spec("w", [2])])
        let grad = Frame(BFloat16.bytes([1.5, -0.25]))
        let h = Header(kind: .push, workerID: 0, requestID: 2, step: 1, incarnation: 1000)
        let e = d.core.receive(Envelope.frames(h, body: Body.encode(Names(names: ["w"])), tensors: [grad]), from: Driver.peer(0), now: d.now)
        #expect(e.kinds == [.pushed])
        #expect(d.core.value(of: "w") == [-0.75, 0.125])
        let values = d.pull(0, step: 2, ["w"])
        #expect(values.replies[0].1.tensors.first?.count == 4)
        let wrong = d.push(0, step: 2, ["w": [1, 1]])  // float32 bytes from a bf16 worker
        #expect(wrong.errors.first?.code == .wrongTensorSize)
    }

    @Test("a server that does not take bf16 refuses it at hello, saying what to do")
    func bf16Refused() {
        let d = Driver(Driver.config(.async) { $0.wireDTypes = [.float32] })
        let e = d.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "worker 0", numWorkers: 1, wireDType: .bf16)))
        #expect(e.errors.first?.code == .unsupported)
        #expect(e.errors.first?.message.contains("--wire-dtype float32") == true)
    }

    @Test("the first worker fixes the job's scaling; a worker with another is refused; the checkpoint records it")
    func scaling() {
        let d = Driver(Driver.config(.async))
        _ = d.request(.hello, worker: 0, body: Body.encode(Hello(workerName: "worker 0", numWorkers: 2, scaling: "seasonal:52")))
        let e = d.request(.hello, worker: 1, body: Body.encode(Hello(workerName: "worker 1", numWorkers: 2, scaling: "global")))
        #expect(e.errors.first?.code == .settingsConflict)
        #expect(d.core.snapshot().scaling == "seasonal:52")
    }
}

@Suite("Log budget")
struct LogBudgetTests {
    @Test("at most a burst of lines per kind in each window; the rest are counted and reported once the window closes")
    func budget() {
        var b = LogBudget(burst: 3, window: 10)
        let allowed = (0..<100).filter { b.allows("refused: malformed", now: 1 + Double($0) * 0.01) }.count
        #expect(allowed == 3)
        let other = b.allows("refused: indexTaken", now: 2)
        #expect(other)  // another kind has its own budget
        #expect(b.closed(now: 5).isEmpty)  // the window is still open
        let closed = b.closed(now: 11.5)
        #expect(closed.count == 1 && closed[0].key == "refused: malformed" && closed[0].count == 97)
        #expect(b.closed(now: 30).isEmpty)  // reported once
        let again = b.allows("refused: malformed", now: 12)
        #expect(again)  // a new window
        // A sustained flood: each window's held-back lines are reported once the next window opens.
        var flood = LogBudget(burst: 2, window: 10)
        var reported: [Int] = []
        for k in 0..<3000 {
            let t = Double(k) * 0.01  // 100 a second for 30 s, ticks every 0.05 s
            _ = flood.allows("x", now: t)
            if k % 5 == 0 { reported += flood.closed(now: t).map(\.count) }
        }
        #expect(reported == [998, 998], "\(reported)")
    }

    @Test("a flood of bad requests is counted whole while its warnings are bounded")
    func flood() {
        let d = Driver(Driver.config(.async))
        for _ in 0..<200 { _ = d.core.receive([Frame([1, 2, 3])], from: Driver.peer(9), now: d.now) }
        #expect(d.core.counters.errors["malformed"] == 200)
        #expect(!d.core.mayWarn("refused a request: malformed", now: d.now))
    }
}
