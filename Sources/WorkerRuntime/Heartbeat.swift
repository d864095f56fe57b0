import Foundation
import Logging
import Transport
import Wire

/// Tells every server, once per interval and from a thread and connections of its own, that this worker
/// process is alive, whatever the worker is doing: a step of any length, a slow reply, a recovery. Servers
/// count only this kind of silence (`--worker-timeout`, takeover), so only a paused or dead process is
/// silent. The replies tell the worker in turn when each server was last heard from, so it notices a silent
/// server even while it computes.
///
/// A ZeroMQ socket belongs to one thread: the heartbeat connections are made, used and closed on the
/// heartbeat thread only.
public final class Heartbeat: @unchecked Sendable {
    private let lock = NSLock()
    private var heard: [Double]
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    let interval: Double
    let taskIndex: UInt32
    let incarnation: UInt64
    let makeTransports: @Sendable () throws -> [ClientTransport]
    let logger: Logger

    /// - Parameter makeTransports: makes one connection per server, in the servers' order; called on the
    ///   heartbeat thread.
    public init(
        servers: Int, taskIndex: UInt32, incarnation: UInt64, interval: Double, logger: Logger,
        makeTransports: @escaping @Sendable () throws -> [ClientTransport]
    ) {
        heard = Array(repeating: -Double.infinity, count: servers)
        self.taskIndex = taskIndex
        self.incarnation = incarnation
        self.interval = max(0.05, interval)
        self.logger = logger
        self.makeTransports = makeTransports
    }

    deinit { stop() }

    /// When server `i` last answered a heartbeat (monotonic seconds; -infinity before its first answer).
    public func lastHeard(_ i: Int) -> Double {
        lock.lock()
        defer { lock.unlock() }
        return i < heard.count ? heard[i] : -Double.infinity
    }

    public func start() {
        lock.lock()
        guard !started else {
            lock.unlock()
            return
        }
        started = true
        lock.unlock()
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "heartbeat"
        thread.start()
    }

    /// Stops the thread and closes its connections (bounded: a few intervals at most).
    public func stop() {
        lock.lock()
        let wasStarted = started && !stopping
        stopping = true
        lock.unlock()
        if wasStarted { _ = finished.wait(timeout: .now() + max(2, 4 * interval)) }
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func run() {
        let transports: [ClientTransport]
        do {
            transports = try makeTransports()
        } catch {
            logger.error("heartbeat connections could not be made; servers will see only requests", metadata: ["error": "\(error)"])
            return
        }
        defer { for t in transports { t.close() } }
        let body = Body.encode(Names(names: []))
        var next = MonotonicClock.now()
        var beat: UInt64 = 0
        while !isStopping {
            let now = MonotonicClock.now()
            if now >= next {
                beat &+= 1
                let frames = Envelope.frames(
                    Header(kind: .heartbeat, workerID: taskIndex, requestID: beat, step: 0, incarnation: incarnation), body: body)
                // A full queue (the server is away) drops the beat: the next one goes when it can.
                for t in transports { try? t.send(frames) }
                next = now + interval
            }
            // Any reply (a pong, or a refusal from a server that does not know this worker yet) shows the
            // server is alive.
            for (i, t) in transports.enumerated() {
                while let frames = try? t.receive(timeout: 0), frames.count >= 1 {
                    lock.lock()
                    heard[i] = MonotonicClock.now()
                    lock.unlock()
                }
            }
            Thread.sleep(forTimeInterval: min(0.05, interval / 4))
        }
    }
}
