import Foundation
import Metrics

/// The server's Prometheus metrics, fed from the rules' counters after every turn of the loop.
///
/// Names follow Prometheus' conventions: `ps_updates_applied_total`, `ps_pushes_total{worker}`,
/// `ps_pulls_total{worker}`, `ps_push_staleness_updates` (histogram), `ps_workers{state}`,
/// `ps_errors_total{code}`, `ps_refused_peers_total`, `ps_replies_dropped_total`,
/// `ps_duplicate_pushes_total`, `ps_late_gradients_total`, `ps_checkpoint_age_seconds`,
/// `ps_checkpoint_duration_seconds`, `ps_checkpoints_total`, `ps_checkpoint_failures_total`.
public final class ServerMetrics {
    var last = ServerCounters()
    var lastUpdates: UInt64 = 0
    let updates = Counter(label: "ps_updates_applied_total")
    let staleness = Recorder(label: "ps_push_staleness_updates")
    let refused = Counter(label: "ps_refused_peers_total")
    let dropped = Counter(label: "ps_replies_dropped_total")
    let duplicates = Counter(label: "ps_duplicate_pushes_total")
    let late = Counter(label: "ps_late_gradients_total")
    let checkpoints = Counter(label: "ps_checkpoints_total")
    let checkpointFailures = Counter(label: "ps_checkpoint_failures_total")
    var lastCheckpointFailures = 0
    let checkpointAge = Gauge(label: "ps_checkpoint_age_seconds")
    let checkpointDuration = Gauge(label: "ps_checkpoint_duration_seconds")
    let workers = ["active", "done", "lost"].map { Gauge(label: "ps_workers", dimensions: [("state", $0)]) }
    var pushes: [UInt32: Counter] = [:]
    var pulls: [UInt32: Counter] = [:]
    var errors: [String: Counter] = [:]
    let started = ProcessInfo.processInfo.systemUptime

    public init() {}

    /// Reads the rules' counters and the loop's last checkpoint, and moves the metrics by the difference.
    public func observe(_ core: ServerCore, lastCheckpoint: (path: String, seconds: Double, at: Double)?, now: Double) {
        let c = core.counters
        if core.updates > lastUpdates { updates.increment(by: Int64(core.updates - lastUpdates)) }
        lastUpdates = core.updates
        for s in core.drainStaleness() { staleness.record(Int64(clamping: s)) }
        func delta(_ counter: Counter, _ new: Int, _ old: Int) { if new > old { counter.increment(by: Int64(new - old)) } }
        delta(refused, c.refusedPeers, last.refusedPeers)
        delta(dropped, c.repliesDropped, last.repliesDropped)
        delta(duplicates, c.duplicatePushes, last.duplicatePushes)
        delta(late, c.lateGradients, last.lateGradients)
        delta(checkpoints, c.checkpoints, last.checkpoints)
        for (w, n) in c.pushes {
            let counter = pushes[w] ?? Counter(label: "ps_pushes_total", dimensions: [("worker", "\(w)")])
            pushes[w] = counter
            delta(counter, n, last.pushes[w] ?? 0)
        }
        for (w, n) in c.pulls {
            let counter = pulls[w] ?? Counter(label: "ps_pulls_total", dimensions: [("worker", "\(w)")])
            pulls[w] = counter
            delta(counter, n, last.pulls[w] ?? 0)
        }
        for (code, n) in c.errors {
            let counter = errors[code] ?? Counter(label: "ps_errors_total", dimensions: [("code", code)])
            errors[code] = counter
            delta(counter, n, last.errors[code] ?? 0)
        }
        let counts = core.workerCounts
        workers[0].record(counts.active)
        workers[1].record(counts.done)
        workers[2].record(counts.lost)
        if let lastCheckpoint {
            checkpointAge.record(now - lastCheckpoint.at)
            checkpointDuration.record(lastCheckpoint.seconds)
        } else {
            checkpointAge.record(now - started)
        }
        last = c
    }

    /// Moves `ps_checkpoint_failures_total` to the loop's count of failed periodic checkpoints.
    public func observeCheckpointFailures(_ total: Int) {
        if total > lastCheckpointFailures { checkpointFailures.increment(by: Int64(total - lastCheckpointFailures)) }
        lastCheckpointFailures = total
    }
}
