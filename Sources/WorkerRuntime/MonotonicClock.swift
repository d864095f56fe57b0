import Foundation

/// Seconds on a clock that never jumps (CLOCK_MONOTONIC): every deadline of the worker uses it, so a wall
/// clock set back or forward (NTP, a suspended VM) cannot stretch or cut a wait.
public enum MonotonicClock {
    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
