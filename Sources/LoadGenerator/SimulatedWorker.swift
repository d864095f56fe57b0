import Foundation
import Logging
import Transport
import VariableScopes
import Wire
import WorkerRuntime
import ZeroMQ

/// What the workers of a run share: how far they got, whether to stop, and the first failures. Waits on it
/// are bounded and woken by events (a join, a finish, a failure, a signal), not by polling.
final class RunControl: @unchecked Sendable {
    struct State {
        var joined = 0
        var finished = 0
        var stopping = false
        var interrupted = false
        var failures: [(index: Int, message: String)] = []
    }

    private let condition = NSCondition()
    private var state = State()

    /// The state now (a copy).
    var now: State {
        condition.lock()
        defer { condition.unlock() }
        return state
    }
    var isStopping: Bool { now.stopping }

    private func change(_ body: (inout State) -> Void) {
        condition.lock()
        body(&state)
        condition.broadcast()
        condition.unlock()
    }

    func didJoin() { change { $0.joined += 1 } }
    func didFinish() { change { $0.finished += 1 } }
    func stop() { change { $0.stopping = true } }
    /// A signal: stop, and say the run was interrupted.
    func interrupt() {
        change {
            $0.stopping = true
            $0.interrupted = true
        }
    }
    /// A worker failed: the run stops (in sync the others would wait for it).
    func fail(_ index: Int, _ message: String) {
        change {
            $0.failures.append((index, message))
            $0.stopping = true
        }
    }

    /// Waits until `predicate` holds or `deadline` passes; returns whether it holds.
    @discardableResult
    func wait(until deadline: Date, _ predicate: (State) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !predicate(state) {
            if !condition.wait(until: deadline) { return predicate(state) }
        }
        return true
    }

    /// Waits `seconds` unless the run is stopped first; returns false if it was.
    @discardableResult
    func pause(seconds: Double) -> Bool {
        !wait(until: Date().addingTimeInterval(seconds)) { $0.stopping }
    }
}

/// One simulated worker: a real `RemoteExchange` client on a thread of its own, pushing the same
/// precomputed gradients and pulling the values at every step, with no model compute in between, so that
/// only the servers (and the network path) are measured.
final class SimulatedWorker: @unchecked Sendable {
    let index: Int
    let variables: [Variable]
    /// When each exchange (push + pull) completed, monotonic seconds; written by the worker's thread only,
    /// read after it finished.
    private(set) var stepEnds: [Double] = []
    /// Push→acknowledgement latencies with the time they were taken (applied in async, queued in sync).
    private(set) var pushLatencies: [(at: Double, seconds: Double)] = []
    private(set) var bytesPerStep = 0.0

    init(index: Int, variables: [Variable]) {
        self.index = index
        self.variables = variables
    }

    /// Starts the worker's thread: connect, join, step until told to stop, say done, close.
    /// - Parameter heartbeats: also send heartbeats, as a real worker does, from a thread and connections of
    ///   their own.
    func start(
        servers: [String], context: Context, heartbeats: Bool, settings: RemoteSettings, control: RunControl,
        logger: Logger
    ) {
        let thread = Thread { [self] in
            run(
                servers: servers, context: context, heartbeats: heartbeats, settings: settings, control: control,
                logger: logger)
            control.didFinish()
        }
        thread.name = "worker-\(index)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run(
        servers: [String], context: Context, heartbeats: Bool, settings: RemoteSettings, control: RunControl,
        logger: Logger
    ) {
        var transports: [ZeroMQClientTransport] = []
        defer { for t in transports { t.close() } }
        do {
            transports = try servers.map {
                try ZeroMQClientTransport(ZeroMQClientSettings(server: $0), context: context)
            }
            let makeHeartbeats: @Sendable () throws -> [ClientTransport] = {
                try servers.map { try ZeroMQClientTransport(ZeroMQClientSettings(server: $0), context: context) }
            }
            let exchange = try RemoteExchange(
                servers: servers, transports: transports, settings: settings, logger: logger,
                heartbeatTransports: heartbeats ? makeHeartbeats : nil)
            exchange.stopRequested = { control.isStopping }
            exchange.onLatency = { [self] kind, seconds in
                if kind == .push { pushLatencies.append((MonotonicClock.now(), seconds)) }
            }
            _ = try exchange.start(variables: variables)
            control.didJoin()
            var step = 0
            stepEnds.reserveCapacity(4096)
            pushLatencies.reserveCapacity(4096 * servers.count)
            while !control.isStopping {
                step += 1
                try exchange.exchange(step: step, variables: variables)
                stepEnds.append(MonotonicClock.now())
            }
            bytesPerStep = exchange.stats.bytesPerStep
            try exchange.finish(variables: variables)
        } catch RemoteError.stoppedWhileAway {
            // Stopping on a signal while a server was going away too: not a failure of the run.
        } catch {
            control.fail(index, "\(error)")
        }
    }
}
