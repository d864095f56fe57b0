import Foundation
import FuzzSupport

/// `FuzzSafeTensors`: the safetensors reader and checkpoint restore (see `FuzzMain` for its three ways to run).
@main
enum FuzzSafeTensorsMain {
    static func main() {
        FuzzMain.run(
            name: "FuzzSafeTensors", writeSeeds: { try Seeds.write(to: $0) }, outcome: { FileChecks.run($0).rawValue },
            callback: fuzzTestOneInput)
    }
}
