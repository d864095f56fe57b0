import Foundation
import Testing

extension Integration {
    /// What runs the job across machines: the Kubernetes manifests, and real network hops between network
    /// namespaces with TF_CONFIG, CURVE keys and TFJob-style names.
    @Suite("Deployment", .serialized)
    struct DeploymentTests {
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
            .standardized

        @Test("every core manifest passes kubernetes-validate --strict; the TFJob has the structure the operator reads")
        func manifests() throws {
            let script = Self.root.appendingPathComponent("cluster/k8s/check_manifests.py").path
            let (status, text) = try ProcessHarness.runToCompletion("/usr/bin/env", ["python3", script], seconds: 300)
            #expect(status == 0, "\(text.suffix(3000))")
            #expect(text.contains("passed, 0 failed"), "\(text.suffix(3000))")
        }

        @Test("a job across network namespaces with TF_CONFIG and CURVE; then one that survives a server's link going down")
        func namespaces() throws {
            let script = Self.root.appendingPathComponent("cluster/netns-hosts.sh").path
            let bin = ProcessHarness.binDirectory.path
            let (status, text) = try ProcessHarness.runToCompletion(
                "/bin/bash", [script, "--bin", bin, "--steps", "300", "--timeout", "240"], seconds: 300)
            #expect(status == 0, "network namespaces are needed (root, iproute2): \(text.suffix(3000))")
            #expect(text.contains("OK: every process exited 0"), "\(text.suffix(3000))")
            let summary = text.split(separator: "\n").first { $0.hasPrefix("summary:") } ?? ""
            let (s2, t2) = try ProcessHarness.runToCompletion(
                "/bin/bash", [script, "--bin", bin, "--steps", "3000", "--link-down", "3", "--timeout", "240"], seconds: 300)
            #expect(s2 == 0, "\(t2.suffix(3000))")
            let linkDown = t2.split(separator: "\n").first { $0.hasPrefix("link-down:") } ?? ""
            // The outage hit training (it starts at the first progress line, thousands of steps before the end) and
            // training went on after the link came back.
            #expect(linkDown.contains("training resumed"), "\(t2.suffix(3000))")
            print("namespace job: \(summary)")
            print("namespace job, server 0's link down: \(linkDown)")
        }
    }
}
