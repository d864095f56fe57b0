import Optimizers
import Wire

/// What the consistency policy needs to know of a worker (kept by the core, per task index).
struct WorkerProgress {
    /// The last push applied (or dropped as late) from this incarnation: re-sends up to it are duplicates.
    var lastPushRequest: UInt64 = 0
    /// Sync: the push waiting in the step's bucket.
    var pendingPushRequest: UInt64?
    var lastPushedStep: UInt64 = 0
    /// The server's update count when this worker last got values: a push's staleness counts from it.
    var updatesAtLastPull: UInt64 = 0
    /// Sync steps it contributed to that were dropped as non-finite, not yet reported to it.
    var droppedSteps = 0
    var wire = WorkerWire()
}

/// When a push is applied and when a pull may be answered: the one place where sync and async differ.
/// Li et al. (OSDI 2014) call these consistency models: sequential (sync, a barrier per step), eventual
/// (async) and bounded delay (async with staleness s).
protocol ConsistencyPolicy: AnyObject {
    /// The step reported to workers with values: the sync step, or the update count (async).
    func reportedStep(updates: UInt64) -> UInt64
    /// The step a new process for an index resumes after.
    func resumeStep(for progress: WorkerProgress) -> UInt64
    /// Takes a checked push of `gradients` (float32, one per name) labelled `step` from `index`.
    /// - Throws: `ErrorBody` (`nonFinite`) when it cannot be applied; nothing changed then.
    func push(
        index: UInt32, step: UInt64, names: [String], gradients: [Frame], scale: Float?, in core: ServerCore
    ) throws(ErrorBody) -> Pushed.Outcome
    /// Whether a pull for `step` from `worker` can be answered now.
    func ready(forStep step: UInt64, worker: UInt32, in core: ServerCore) -> Bool
    /// Applies what has become ready (a sync step once enough workers pushed).
    func advance(in core: ServerCore)
    /// Sync: the step applied last (for checkpoints); async: 0.
    var syncStep: UInt64 { get }
}

/// Async: each push is applied as it arrives; with staleness s, a pull for step k waits until every other
/// active worker has pushed step k - 1 - s (bounded delay).
final class AsyncStaleness: ConsistencyPolicy {
    let staleness: Int?
    init(staleness: Int?) { self.staleness = staleness }

    var syncStep: UInt64 { 0 }
    func reportedStep(updates: UInt64) -> UInt64 { updates }
    func resumeStep(for progress: WorkerProgress) -> UInt64 { progress.lastPushedStep }

    func push(
        index: UInt32, step: UInt64, names: [String], gradients: [Frame], scale: Float?, in core: ServerCore
    ) throws(ErrorBody) -> Pushed.Outcome {
        // The update's own pass finds a non-finite gradient (it makes the update non-finite); it is named then.
        if let bad = core.applyUpdate(names: names, gradients: gradients, scale: scale ?? 1) {
            core.counters.nonFiniteRefused += 1
            let culprit = zip(names, gradients).first { !$0.1.withUnsafeBytes { allFinite($0.bindMemory(to: Float.self)) } }
            throw ErrorBody(
                code: .nonFinite,
                message: culprit.map { "ps \(core.config.name): gradient for \($0.0) holds NaN or infinity; nothing was applied" }
                    ?? "ps \(core.config.name): the gradient for \(bad) would make it or its optimizer state NaN or infinite; nothing was applied"
            )
        }
        var p = core.progress[index] ?? WorkerProgress()
        p.lastPushedStep = max(p.lastPushedStep, step)
        core.progress[index] = p
        return .applied
    }

    func ready(forStep step: UInt64, worker: UInt32, in core: ServerCore) -> Bool {
        guard let s = staleness, let n = core.membership.numWorkers else { return true }
        let (lag, overflow) = UInt64(s).addingReportingOverflow(1)
        guard !overflow, step > lag else { return true }
        let floor = step - lag
        for w in 0..<UInt32(n) where w != worker {
            if let m = core.membership[w], m.status != .active { continue }
            if (core.progress[w]?.lastPushedStep ?? 0) < floor { return false }
        }
        return true
    }

    func advance(in core: ServerCore) {}
}

/// Sync: the gradients of the next step from the active workers are summed in worker order (so the result
/// does not depend on arrival order), averaged and applied once, when all but `backupWorkers` active workers
/// have pushed; a worker's pull waits until its own gradient has been applied. Late gradients (for a step
/// already applied) are dropped and counted. A push is acknowledged as `queued`: a server that crashes before
/// its step is applied loses it, and the step goes on without it (see the README).
final class SyncBarrier: ConsistencyPolicy {
    let backupWorkers: Int
    private(set) var syncStep: UInt64
    /// The gradients of step `syncStep + 1`, by worker, then by variable.
    private(set) var bucket: [UInt32: [String: [Float]]] = [:]

    init(backupWorkers: Int, step: UInt64) {
        self.backupWorkers = backupWorkers
        syncStep = step
    }

    func reportedStep(updates: UInt64) -> UInt64 { syncStep }
    func resumeStep(for progress: WorkerProgress) -> UInt64 { syncStep }

    func push(
        index: UInt32, step: UInt64, names: [String], gradients: [Frame], scale: Float?, in core: ServerCore
    ) throws(ErrorBody) -> Pushed.Outcome {
        // Kept for later, so checked now.
        for (name, frame) in zip(names, gradients) where !frame.withUnsafeBytes({ allFinite($0.bindMemory(to: Float.self)) }) {
            core.counters.nonFiniteRefused += 1
            throw ErrorBody(code: .nonFinite, message: "ps \(core.config.name): gradient for \(name) holds NaN or infinity; nothing was applied")
        }
        if step <= syncStep {
            core.counters.lateGradients += 1
            return .late
        }
        // A push labelled past the next step (the server restarted and lost updates) counts towards it.
        var grads: [String: [Float]] = [:]
        for (name, frame) in zip(names, gradients) {
            var g = frame.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            if let s = scale { for k in g.indices { g[k] *= s } }
            grads[name] = g
        }
        bucket[index] = grads
        return .queued
    }

    func ready(forStep step: UInt64, worker: UInt32, in core: ServerCore) -> Bool { bucket[worker] == nil }

    /// Gradients the next step waits for: every active worker's, plus any a finished one sent anyway, less
    /// the backup workers.
    func needed(in core: ServerCore) -> Int {
        let n = core.membership.numWorkers ?? 1
        var count = 0
        for i in 0..<UInt32(n) where core.membership.isActive(i) || bucket[i] != nil { count += 1 }
        return max(1, count - backupWorkers)
    }

    func advance(in core: ServerCore) {
        guard !bucket.isEmpty, bucket.count >= needed(in: core) else { return }
        let contributors = bucket.keys.sorted()
        var names: [String] = []
        var sums: [[Float]] = []
        for name in core.store.order {
            let parts = contributors.compactMap { bucket[$0]?[name] }
            guard var sum = parts.first else { continue }
            for p in parts.dropFirst() { for k in 0..<sum.count { sum[k] += p[k] } }
            // Each variable is averaged over the gradients it received, as TensorFlow's per-variable
            // accumulators do (SyncReplicasOptimizer): a worker that pushed only some variables (a partial
            // push) does not shrink the others' step.
            if parts.count > 1 {
                let scale = 1 / Float(parts.count)
                for k in 0..<sum.count { sum[k] *= scale }
            }
            names.append(name)
            sums.append(sum)
        }
        let frames = sums.map { Frame(floats: $0) }
        if let bad = core.applyUpdate(names: names, gradients: frames, scale: 1) {
            // Told to every worker that contributed, with its next values, and counted.
            core.counters.nonFiniteRefused += 1
            core.counters.droppedSyncSteps += 1
            for i in contributors { core.progress[i, default: WorkerProgress()].droppedSteps += 1 }
            core.logger.error(
                "sync step dropped: its averaged gradient would make \(bad) or its optimizer state non-finite; the workers that contributed are told",
                metadata: ["step": "\(syncStep + 1)", "contributors": "\(contributors)"])
        }
        syncStep += 1
        for i in contributors {
            if var p = core.progress[i], let pending = p.pendingPushRequest {
                p.lastPushRequest = max(p.lastPushRequest, pending)
                p.pendingPushRequest = nil
                core.progress[i] = p
            }
        }
        bucket = [:]
    }
}
