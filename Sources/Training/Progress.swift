import Foundation

/// Progress for a person watching: step, loss, examples/s and ETA on one updating line when the
/// output is a terminal, plain lines every `every` steps otherwise (logs, CI, the cluster harness).
final class Progress {
    let total: Int
    let every: Int
    let output: (String) -> Void
    let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastDraw = Date.distantPast

    init(total: Int, every: Int, output: @escaping (String) -> Void) {
        self.total = total
        self.every = max(1, every)
        self.output = output
    }

    func update(step: Int, loss: Float, examplesPerSecond: Double, elapsed: Double) {
        // Formatted only when shown: this runs every step, and formatting costs more than a small step's
        // bookkeeping should.
        func line() -> String {
            let eta = Double(total - step) * elapsed / Double(max(step, 1))
            return String(
                format: "step %d/%d  loss %.5f  %.0f examples/s  ETA %@", step, total, loss, examplesPerSecond,
                Progress.duration(eta))
        }
        if isTerminal {
            if Date().timeIntervalSince(lastDraw) > 0.1 || step == total {
                FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line()).utf8))
                lastDraw = Date()
            }
        } else if step % every == 0 || step == total {
            output(line())
        }
    }

    func finish() {
        if isTerminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
