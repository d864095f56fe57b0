import Foundation
import SafeTensors
import Testing
import Wire

extension Integration {
    /// Files that lie, are damaged, or cannot be written, and addresses that cannot be used, against the
    /// real executables: each gives its exit status (64 usage, 65 data, 1 failure) with a message naming
    /// the file, field or option, never a trap (issue 18, findings 3, 5, 7, 8 and 9).
    @Suite("Hostile files and addresses", .serialized)
    struct HostileFileTests {
        /// A raw safetensors file: header JSON as given, then `data`, with the header length stated (or true).
        static func raw(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
            var out = Data()
            var n = (length ?? UInt64(header.utf8.count)).littleEndian
            withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
            out.append(contentsOf: Array(header.utf8))
            out.append(contentsOf: data)
            return out
        }

        static let two: [UInt8] = [Float(1), Float(2)].withUnsafeBytes { Array($0) }

        /// A server checkpoint of one variable `v` ([2], Adam), as `ps-server --name label` writes it (format 2 with
        /// its checksum), or an older format-1 file without one; `change` edits the metadata first.
        static func checkpoint(
            label: String, sequence: Int, value: [Float] = [0.5, -0.5], checksum: Bool = true,
            _ change: (inout [String: String]) -> Void = { _ in }
        ) -> Data {
            var meta = [
                "format": checksum ? "scoped-trainer-ps/2" : "scoped-trainer-ps/1", "server": label, "mode": "async",
                "optimizer": "adam", "optimizer_kind": "adam", "updates": "\(sequence)", "step": "0",
                "sequence": "\(sequence)", "num_workers": "1", "scaling": "",
                "variables": #"[{"dtype":"float32","name":"v","registeredBy":"worker 0","step":\#(sequence)}]"#,
                "workers": #"[{"done":false,"incarnation":7,"index":0,"lastPushRequest":3,"lastPushedStep":3}]"#,
            ]
            change(&meta)
            return SafeTensors.encode(
                [("v", [2], value), ("optimizer/v/m", [2], [0, 0]), ("optimizer/v/v", [2], [0, 0])], metadata: meta,
                checksum: checksum)
        }

        struct Crafted: CustomTestStringConvertible, Sendable {
            let name: String
            let bytes: Data
            /// Words the error must hold besides the file's name.
            let words: [String]
            var testDescription: String { name }
        }

        /// The files of finding 3 (each trapped the server or the worker), and values that are not finite.
        static let crafted: [Crafted] = [
            Crafted(
                name: "a header length of 0x7FFF_FFFF_FFFF_FFFF", bytes: raw("{}", length: 0x7FFF_FFFF_FFFF_FFFF),
                words: ["header length"]),
            Crafted(
                name: "negative data_offsets",
                bytes: raw(#"{"v":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: two),
                words: ["data_offsets"]),
            Crafted(
                name: "a shape of [2^32, 2^32]",
                bytes: raw(#"{"v":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: two),
                words: ["shape"]),
            Crafted(
                name: "data_offsets near Int.max",
                bytes: raw(
                    #"{"v":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775807]}}"#,
                    data: two),
                words: ["data_offsets"]),
            Crafted(
                name: "NaN in a variable", bytes: checkpoint(label: "x", sequence: 1, value: [0.5, .nan]),
                words: ["v", "nan"]),
        ]

        /// The server-only lies: metadata numbers the worker does not read.
        static let lyingMetadata: [Crafted] = [
            Crafted(
                name: "updates of 2^64 - 1",
                bytes: checkpoint(label: "x", sequence: 1) { $0["updates"] = "18446744073709551615" },
                words: ["updates"]),
            Crafted(
                name: "a step of 2^63",
                bytes: checkpoint(label: "x", sequence: 1) { $0["step"] = "9223372036854775808" },
                words: ["step"]),
            Crafted(
                name: "a worker slot with lastPushedStep 2^64 - 1",
                bytes: checkpoint(label: "x", sequence: 1) {
                    $0["workers"] =
                        #"[{"done":false,"incarnation":7,"index":0,"lastPushRequest":3,"lastPushedStep":18446744073709551615}]"#
                }, words: ["lastPushedStep"]),
        ]

        /// Starts a server on `dir` and returns its exit status if it exits within 10 s (nil if it serves).
        func startServer(_ h: ProcessHarness, dir: String, label: String, _ extra: [String] = []) throws -> (
            ProcessHarness.Running, Int32?
        ) {
            let r = try h.start(
                "ps-server", ["--port", "0", "--name", label, "--checkpoint-dir", dir, "--keep-serving"] + extra,
                label: label)
            // Until it exits, or says it serves (then it restored what it could).
            let deadline = Date().addingTimeInterval(10)
            while r.process.isRunning && Date() < deadline && !r.output.contains("serving") {
                Thread.sleep(forTimeInterval: 0.02)
            }
            if r.process.isRunning { return (r, nil) }
            let status =
                r.process.terminationReason == .uncaughtSignal
                ? 128 + r.process.terminationStatus : r.process.terminationStatus
            return (r, status)
        }

        @Test("a sync Adam server's checkpoint restored by an async momentum one: a warning naming both, and momentum from zero, not Adam's m")
        func otherModeAndOptimizer() throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            let (first, ps) = try h.startServer(["--mode", "sync", "--optimizer", "adam", "--checkpoint-dir", dir], label: "ps-m")
            let w = try h.start("worker", ["--ps", ps, "--num-workers", "1"] + Small.args(steps: 5), label: "w")
            h.expectExit(w, 0, seconds: 120, "the worker")
            h.expectExit(first, 0, seconds: 30, "the sync server once its worker is done")
            let before = Set((try FileManager.default.contentsOfDirectory(atPath: dir)))
            let (again, status) = try startServer(h, dir: dir, label: "ps-m", ["--mode", "async", "--optimizer", "momentum"])
            #expect(status == nil, "\(again.output.suffix(1500))")
            #expect(again.output.contains("restored"), "\(again.output.suffix(1500))")
            #expect(again.output.contains("written by a --mode sync server; this one runs --mode async"), "\(again.output.suffix(1500))")
            #expect(again.output.contains("written with optimizer adam") && again.output.contains("start from zero"), "\(again.output.suffix(1500))")
            again.process.terminate()
            h.expectExit(again, 0, seconds: 30, "the async server on SIGTERM")
            // Its final checkpoint (no update since the restore) holds momentum slots of zeros.
            let written = Set(try FileManager.default.contentsOfDirectory(atPath: dir)).subtracting(before)
            let newest = try #require(written.filter { $0.hasSuffix(".safetensors") }.sorted().last, "\(written)")
            let file = try SafeTensors.load("\(dir)/\(newest)")
            let slots = file.tensors.filter { $0.key.hasSuffix("/momentum") }
            #expect(!slots.isEmpty && slots.values.allSatisfy { $0.scalars.allSatisfy { $0 == 0 } }, "\(file.tensors.keys.sorted())")
            #expect(!file.tensors.keys.contains { $0.hasSuffix("/m") })
        }

        @Test(
            "a crafted checkpoint makes ps-server exit 65 at start, naming the file and what is wrong, not trap",
            arguments: crafted + lyingMetadata)
        func serverRefusesCraftedCheckpoint(_ c: Crafted) throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let file = "\(dir)/ps-crafted-00000001.safetensors"
            try c.bytes.write(to: URL(fileURLWithPath: file))
            let (server, status) = try startServer(h, dir: dir, label: "ps-crafted")
            if status == nil { server.process.terminate() }
            #expect(
                status == 65,
                "\(c.name): exit \(status.map(String.init) ?? "none (still serving)"): \(server.output.suffix(1500))")
            #expect(server.output.contains(file), "\(server.output.suffix(1500))")
            for w in c.words { #expect(server.output.contains(w), "should name \(w): \(server.output.suffix(1500))") }
            #expect(!server.output.contains("Fatal error"), "\(server.output.suffix(1500))")
        }

        @Test(
            "a crafted checkpoint makes worker --restore exit 65, naming the file and what is wrong, not trap",
            arguments: crafted)
        func workerRefusesCraftedCheckpoint(_ c: Crafted) throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let file = "\(dir)/ps-crafted-00000001.safetensors"
            try c.bytes.write(to: URL(fileURLWithPath: file))
            let w = try h.start("worker", Small.args(steps: 0) + ["--restore", dir], label: "restore")
            let status = h.wait(w, seconds: 60, "worker --restore")
            #expect(
                status == 65 && w.process.terminationReason == .exit,
                "\(c.name): exit \(status.map(String.init) ?? "none"): \(w.output.suffix(1500))")
            #expect(w.output.contains(file), "\(w.output.suffix(1500))")
            for word in c.words { #expect(w.output.contains(word), "should name \(word): \(w.output.suffix(1500))") }
        }

        @Test(
            "a damaged newest checkpoint is reported (file, what is wrong, the older file used); --strict-restore exits 65"
        )
        func damagedNewestIsReported() throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let older = "\(dir)/ps-dmg-00000001.safetensors"
            let newest = "\(dir)/ps-dmg-00000002.safetensors"
            try Self.checkpoint(label: "ps-dmg", sequence: 1).write(to: URL(fileURLWithPath: older))
            // One bit flipped in the newest file's data: only the checksum can tell.
            var bytes = Self.checkpoint(label: "ps-dmg", sequence: 2, value: [0.75, -0.75])
            bytes[bytes.count - 20] ^= 0x04
            try bytes.write(to: URL(fileURLWithPath: newest))

            let (strict, strictStatus) = try startServer(h, dir: dir, label: "ps-dmg", ["--strict-restore"])
            if strictStatus == nil { strict.process.terminate() }
            #expect(
                strictStatus == 65,
                "--strict-restore: exit \(strictStatus.map(String.init) ?? "none"): \(strict.output.suffix(1500))")
            #expect(
                strict.output.contains(newest) && strict.output.contains("--strict-restore"),
                "\(strict.output.suffix(1500))")

            let (server, status) = try startServer(h, dir: dir, label: "ps-dmg")
            #expect(status == nil, "the server should restore the older file and serve: \(server.output.suffix(1500))")
            #expect(
                h.waitFor(server, seconds: 10, "the restore line") {
                    $0.contains("restored 1 variables at update 1 from \(older)")
                })
            let warning =
                server.output.split(separator: "\n").first { $0.contains("cannot be restored") }.map(String.init) ?? ""
            #expect(
                warning.contains(newest) && warning.contains("checksum")
                    && warning.contains("using the older \(older)"), "\(server.output.suffix(1500))")
            server.process.terminate()
            #expect(h.wait(server, seconds: 15, "ps-server to stop") == 0, "\(server.output.suffix(1500))")
            // Its final checkpoint is sequence 3, written whole, and restores next time without a warning.
            #expect(FileManager.default.fileExists(atPath: "\(dir)/ps-dmg-00000003.safetensors"))
        }

        @Test("a checkpoint from before checksums restores with a warning that damage cannot be detected")
        func olderFormatWarns() throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let file = "\(dir)/ps-old-00000001.safetensors"
            try Self.checkpoint(label: "ps-old", sequence: 1, checksum: false).write(to: URL(fileURLWithPath: file))
            let (server, status) = try startServer(h, dir: dir, label: "ps-old")
            #expect(status == nil, "\(server.output.suffix(1500))")
            #expect(h.waitFor(server, seconds: 10, "the restore line") { $0.contains("restored 1 variables") })
            #expect(server.output.contains("\(file) carries no checksum"), "\(server.output.suffix(1500))")
            server.process.terminate()
            #expect(h.wait(server, seconds: 15, "ps-server to stop") == 0)
        }

        @Test(
            "a checkpoint directory that stops taking writes: periodic tries back off 1 s, 2 s...; SIGTERM then exits 1 with the reason"
        )
        func unwritableDirectory() throws {
            let h = try ProcessHarness()
            let dir = h.directory.appendingPathComponent("ckpt").path
            let (server, endpoint) = try h.startServer(
                ["--checkpoint-dir", dir, "--checkpoint-secs", "4", "--keep-serving"], label: "ps-ro")
            let raw = try RawWorker(endpoint: "tcp://\(endpoint)", index: 0, of: 1)
            defer { raw.close() }
            try raw.hello()
            let spec = VariableSpec(
                name: "v", shape: [2], dtype: "float32", initializer: InitializerSpec(kind: "zeros"), seed: 1)
            _ = try raw.call(.register, Body.encode(Register(variables: [spec])))
            _ = try raw.call(.push, step: 1, Body.encode(Names(names: ["v"])), tensors: [[0.1, 0.1]])
            // As root, permissions do not stop writes: a file where the directory was does.
            try FileManager.default.removeItem(atPath: dir)
            #expect(FileManager.default.createFile(atPath: dir, contents: Data([1])))
            #expect(
                h.waitFor(server, seconds: 20, "a third failed periodic checkpoint") {
                    $0.components(separatedBy: "periodic checkpoint failed").count > 3
                })
            let failures = server.output.components(separatedBy: "\n").filter {
                $0.contains("periodic checkpoint failed")
            }
            #expect(
                failures.count >= 3 && failures[0].contains("retrying in 1.0 s")
                    && failures[1].contains("retrying in 2.0 s"), "\(failures)")
            kill(server.process.processIdentifier, SIGTERM)
            #expect(h.wait(server, seconds: 15, "ps-server to stop") == 1, "\(server.output.suffix(1500))")
            #expect(server.output.contains("the final checkpoint was not written"), "\(server.output.suffix(1500))")
            print("unwritable checkpoint dir: \(failures.count) failure lines before SIGTERM; exit 1")
        }

        /// A bad command line or environment: what the executable is given and words its message must hold.
        struct BadStart: CustomTestStringConvertible, Sendable {
            let executable: String
            let arguments: [String]
            var tfConfig: String? = nil
            let words: [String]
            var testDescription: String {
                // A 2,000-worker cluster would fill the log: its start says enough.
                "\(tfConfig.map { "TF_CONFIG=\($0.count > 120 ? $0.prefix(100) + "..." : $0) " } ?? "")\(executable) \(arguments.joined(separator: " "))"
            }
        }

        static let cluster2000 =
            #"{"cluster": {"ps": ["p:1"], "worker": ["#
            + (0..<2000).map { "\"w\($0):1\"" }.joined(separator: ",") + #"]}, "task": {"type": "ps", "index": 0}}"#

        static let badStarts: [BadStart] = [
            BadStart(executable: "worker", arguments: ["--ps", "127.0.0.1:+5556"], words: ["--ps", "+5556"]),
            BadStart(
                executable: "worker", arguments: ["--ps", "127.0.0.1:5556,localhost:5556"],
                words: ["--ps[1]", "same server"]),
            BadStart(executable: "worker", arguments: ["--ps", "h:1,h:1"], words: ["--ps[1]", "same server"]),
            BadStart(executable: "worker", arguments: ["--ps", "[::1]:5556"], words: ["IPv6", "not supported"]),
            BadStart(executable: "ps-server", arguments: ["--port", "0", "--bind", "::1"], words: ["--bind", "IPv6"]),
            BadStart(
                executable: "worker", arguments: [],
                tfConfig:
                    #"{"cluster": {"ps": ["a:1"], "worker": ["w:1", "v:1"]}, "task": {"type": "worker", "index": true}}"#,
                words: ["TF_CONFIG", "task.index"]),
            BadStart(
                executable: "ps-server", arguments: [],
                tfConfig: #"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 1.5}}"#,
                words: ["TF_CONFIG", "task.index"]),
            BadStart(
                executable: "ps-server", arguments: [],
                tfConfig: #"{"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": "1"}}"#,
                words: ["TF_CONFIG", "task.index"]),
            BadStart(
                executable: "ps-server", arguments: [],
                tfConfig: #"{"cluster": {"ps": ["a:+2222"]}, "task": {"type": "ps", "index": 0}}"#,
                words: ["TF_CONFIG", "cluster.ps[0]", "+2222"]),
            BadStart(
                executable: "worker", arguments: [],
                tfConfig:
                    #"{"cluster": {"ps": ["localhost:2222", "127.0.0.1:2222"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}"#,
                words: ["TF_CONFIG", "cluster.ps[1]", "same address"]),
            BadStart(
                executable: "ps-server", arguments: ["--bind", "127.0.0.1"], tfConfig: cluster2000,
                words: ["2000 workers", "--max-workers 1024"]),
        ]

        @Test(
            "a bad address, TF_CONFIG number or cluster size exits 64 at start, naming the option or field",
            arguments: badStarts)
        func badStart(_ line: BadStart) throws {
            let extra =
                line.executable == "worker"
                ? [
                    "--steps", "0", "--batch", "4", "--window", "6", "--horizon", "3", "--hidden", "8", "--hidden2",
                    "5",
                ] : []
            let (status, output) = try Self.run(line.executable, line.arguments + extra, tfConfig: line.tfConfig)
            #expect(status == 64, "exit \(status): \(output.suffix(1500))")
            for w in line.words { #expect(output.contains(w), "the message should name \(w): \(output.suffix(1500))") }
            #expect(!output.contains("Fatal error"), "\(output.suffix(1500))")
        }

        @Test(
            "a --save that cannot be written exits 64 before training; a run that diverges exits 1 naming the variable and saves nothing"
        )
        func saveAndDivergence() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("save-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (status, output) = try Self.run(
                "worker", ["--data", "synthetic", "--steps", "5", "--scaling", "relative", "--save", "\(dir)/no/m.safetensors"])
            #expect(status == 64)
            #expect(output.contains("\(dir)/no does not exist") && !output.contains("trained"), "\(output)")
            let saved = "\(dir)/m.safetensors"
            let (diverged, text) = try Self.run(
                "worker",
                ["--data", "synthetic", "--steps", "20", "--scaling", "relative", "--optimizer", "sgd", "--learning-rate", "1000000",
                 "--save", saved])
            #expect(diverged == 1)
            #expect(text.contains("training diverged: variable") && text.contains("nothing is saved"), "\(text)")
            #expect(!FileManager.default.fileExists(atPath: saved))
        }

        @Test("an authorized-keys file with no keys exits 64 naming it; one with CRLF and a byte-order mark starts")
        func keyFiles() throws {
            let h = try ProcessHarness()
            let server = try h.curveKeys("ps")
            let worker = try h.curveKeys("w0")
            let empty = h.directory.appendingPathComponent("empty_keys").path
            try Data("# nobody\r\n\r\n".utf8).write(to: URL(fileURLWithPath: empty))
            let (status, output) = try Self.run(
                "ps-server",
                ["--port", "0", "--curve-secret-file", server + ".secret", "--curve-authorized-keys", empty])
            #expect(
                status == 64 && output.contains(empty) && output.contains("lists no keys"), "exit \(status): \(output)")
            let windows = h.directory.appendingPathComponent("windows_keys").path
            let key = try String(contentsOfFile: worker + ".public", encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
            try Data([0xEF, 0xBB, 0xBF] + Array("# worker 0\r\n\(key)\r\n".utf8)).write(
                to: URL(fileURLWithPath: windows))
            let (ps, endpoint) = try h.startServer(
                ["--curve-secret-file", server + ".secret", "--curve-authorized-keys", windows, "--keep-serving"],
                label: "ps-crlf")
            #expect(ps.output.contains("1 keys") || h.waitFor(ps, seconds: 10, "serving") { $0.contains("1 keys") })
            // The listed worker trains against it.
            let w = try h.start(
                "worker",
                ["--ps", endpoint, "--curve-server-key", server + ".public", "--curve-secret-file", worker + ".secret"]
                    + Small.args(steps: 3), label: "w0")
            #expect(h.wait(w, seconds: 60, "the listed worker") == 0, "\(w.output.suffix(1500))")
            // A reload that finds no keys warns and keeps the old ones.
            try Data("# emptied\r\n".utf8).write(to: URL(fileURLWithPath: windows))
            kill(ps.process.processIdentifier, SIGHUP)
            #expect(
                h.waitFor(ps, seconds: 10, "the reload warning") {
                    $0.contains("warning") && $0.contains("the old ones stay in force")
                })
            ps.process.terminate()
            h.wait(ps, seconds: 15, "ps-server to stop")
        }

        @Test(
            "the safetensors fuzzer's committed seeds are what FuzzSafeTensors --write-seeds writes, and replay without a crash"
        )
        func fuzzSeeds() throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
                .standardized
            let corpus = root.appendingPathComponent("Tests/Fuzz/corpus-safetensors").path
            let binary = ProcessHarness.binDirectory.appendingPathComponent("FuzzSafeTensors").path
            let fresh = FileManager.default.temporaryDirectory.appendingPathComponent("st-seeds-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: fresh) }
            let (wrote, out) = try ProcessHarness.runToCompletion(binary, ["--write-seeds", fresh], seconds: 30)
            #expect(wrote == 0, "\(out)")
            let names = try FileManager.default.contentsOfDirectory(atPath: fresh).sorted()
            #expect(try FileManager.default.contentsOfDirectory(atPath: corpus).sorted() == names)
            for n in names {
                #expect(
                    FileManager.default.contents(atPath: "\(fresh)/\(n)")
                        == FileManager.default.contents(atPath: "\(corpus)/\(n)"),
                    "seed \(n) differs from the committed one: run FuzzSafeTensors --write-seeds Tests/Fuzz/corpus-safetensors"
                )
            }
            let (status, output) = try ProcessHarness.runToCompletion(binary, [corpus], seconds: 60)
            #expect(status == 0 && output.contains("no crash"), "\(output.suffix(2000))")
            // The seeds reach every outcome: refused, read as a file, restored as a checkpoint.
            #expect(
                output.contains("refused") && output.contains("read as safetensors only")
                    && output.contains("restored as a checkpoint"))
            print(
                "safetensors fuzz corpus: \(names.count) seeds up to date; \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
            )
        }

        /// Runs an executable to its end (30 s at most) with `TF_CONFIG` set or unset; returns status and output.
        static func run(_ executable: String, _ arguments: [String], tfConfig: String? = nil) throws -> (Int32, String)
        {
            let p = Process()
            p.executableURL = ProcessHarness.binDirectory.appendingPathComponent(executable)
            p.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env["TF_CONFIG"] = tfConfig
            p.environment = env
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString).txt")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: out) }
            let handle = try FileHandle(forWritingTo: out)
            defer { try? handle.close() }
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            let deadline = Date().addingTimeInterval(30)
            while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if p.isRunning {
                p.terminate()
                Issue.record("\(executable) did not finish within 30 s")
                let grace = Date().addingTimeInterval(5)
                while p.isRunning && Date() < grace { Thread.sleep(forTimeInterval: 0.02) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
            p.waitUntilExit()
            let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
            return (status, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
        }
    }
}
