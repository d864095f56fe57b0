import Foundation
import FuzzSupport

/// `FuzzServer`: the wire decoder and the server's rules (see `FuzzMain` for its three ways to run).
@main
enum FuzzServerMain {
    static func main() {
        FuzzMain.run(
            name: "FuzzServer", writeSeeds: { try Seeds.write(to: $0) },
            outcome: { data in
                data.withUnsafeBytes { raw in _ = fuzzTestOneInput(raw.bindMemory(to: UInt8.self).baseAddress, raw.count) }
                return "run"
            }, callback: fuzzTestOneInput)
    }
}
