import Foundation
import FuzzSupport

/// `FuzzWorkerReplies`: a worker against a scripted, hostile server, every reply it reads (see `FuzzMain`).
@main
enum FuzzWorkerRepliesMain {
    static func main() {
        FuzzMain.run(
            name: "FuzzWorkerReplies", writeSeeds: { try Seeds.write(to: $0) },
            outcome: { data in data.withUnsafeBytes { runWorker(on: ReplyScript.parse($0)) } ? "worker runs" : "not started" },
            callback: fuzzTestOneInput)
    }
}
