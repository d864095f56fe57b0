/// Bounds how many lines one kind of warning may write: at most `burst` per `window` seconds for each key
/// (an error code, a door refusal). Anyone who can reach the port can make the server refuse a request, so
/// without a bound a loopback client writes a warning per message (74,000 lines, 13 MB in ten seconds, as
/// the adversarial tester measured). The lines held back are counted and reported in one line when their
/// window closes, so nothing is hidden: only repetition is.
struct LogBudget {
    let burst: Int
    let window: Double
    private var opened: [String: Double] = [:]
    private var used: [String: Int] = [:]
    private var heldBack: [String: Int] = [:]
    /// Counts of windows that closed when a new line of their kind opened the next one (under a sustained
    /// flood a window never closes quietly), waiting for `closed` to report them.
    private var pending: [(key: String, count: Int)] = []

    init(burst: Int = 20, window: Double = 10) {
        self.burst = burst
        self.window = window
    }

    /// Whether one more line of `key` may be written at `now`.
    mutating func allows(_ key: String, now: Double) -> Bool {
        if let start = opened[key], now - start < window {
            if used[key, default: 0] < burst {
                used[key, default: 0] += 1
                return true
            }
            heldBack[key, default: 0] += 1
            return false
        }
        if let held = heldBack[key], held > 0 { pending.append((key, held)) }
        heldBack[key] = nil
        opened[key] = now
        used[key] = 1
        return true
    }

    /// The keys whose window has closed with lines held back, and how many; they are forgotten.
    mutating func closed(now: Double) -> [(key: String, count: Int)] {
        var out: [(String, Int)] = pending.map { ($0.key, $0.count) }
        pending = []
        for (key, count) in heldBack where count > 0 {
            guard let start = opened[key], now - start >= window else { continue }
            out.append((key, count))
            heldBack[key] = nil
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
