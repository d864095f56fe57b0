/// Exit codes, following the convention Kubeflow's `restartPolicy: ExitCode` reads: 1–127 are permanent
/// failures (the pod is not restarted), 128–255 retryable (it is).
public enum ExitStatus: Int32, Sendable, CaseIterable {
    case success = 0
    /// A runtime failure that a restart will not cure (a checkpoint that cannot be written, say).
    case failure = 1
    /// A bad command line or `TF_CONFIG` (sysexits' EX_USAGE).
    case usage = 64
    /// Input data that cannot be used: a malformed CSV, a corrupt checkpoint (EX_DATAERR).
    case dataError = 65
    /// A file that does not exist or cannot be read (EX_NOINPUT).
    case noInput = 66
    /// A refusal by a server that will not change: a shape conflict, a task index held by another
    /// worker, a CURVE key not admitted (EX_NOPERM).
    case refused = 77
    /// A peer lost for longer than the recovery timeout, or unreachable: retry later.
    case peerLost = 138
}
