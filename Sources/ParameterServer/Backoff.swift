/// When to try again after a failure: the first retry after `initial` seconds, each later one after twice
/// the previous wait, never more than `maximum`; a success starts over.
///
/// A checkpoint directory that fills up or turns read-only must not be retried every 50 ms tick: each try
/// serialises the whole state and logs a line (20 lines and most of a core per second, issue 18).
public struct Backoff: Sendable, Equatable {
    public let initial: Double
    public let maximum: Double
    /// The wait after the last failure; nil after a success.
    public private(set) var delay: Double?
    /// No try before this time.
    public private(set) var notBefore = -Double.infinity

    public init(initial: Double = 1, maximum: Double) {
        self.initial = max(0, initial)
        self.maximum = max(self.initial, maximum)
    }

    /// Whether a try is due at `now`.
    public func allows(now: Double) -> Bool { now >= notBefore }

    /// Records a failure at `now`; returns the wait before the next try.
    @discardableResult
    public mutating func failed(now: Double) -> Double {
        let next = delay.map { min($0 * 2, maximum) } ?? initial
        delay = next
        notBefore = now + next
        return next
    }

    /// Records a success: the next failure waits `initial` again.
    public mutating func succeeded() {
        delay = nil
        notBefore = -Double.infinity
    }
}
