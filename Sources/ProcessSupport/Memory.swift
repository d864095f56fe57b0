import Foundation

/// This process's memory as the kernel counts it (`/proc/self/status`), for the reports that compare it
/// with what the state needs.
public enum ProcessMemory {
    /// Peak resident set size in bytes (`VmHWM`), or nil where `/proc` does not say.
    public static func peakResidentBytes() -> Int? { statusField("VmHWM") }

    /// Current resident set size in bytes (`VmRSS`).
    public static func residentBytes() -> Int? { statusField("VmRSS") }

    static func statusField(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            // "VmHWM:\t  123456 kB"
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }

    /// Bytes as megabytes with one decimal, for reports.
    public static func megabytes(_ bytes: Int?) -> String { bytes.map { String(format: "%.1f MB", Double($0) / 1e6) } ?? "unknown" }
}
