import Foundation

#if FUZZING
    /// libFuzzer's driver (`-sanitize=fuzzer` links it). SwiftPM links every executable with
    /// `--defsym main=<module>_main`, so libFuzzer's own `main` is never used: each target's entry point
    /// hands its arguments to the driver instead.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt
#endif

/// The one `main` of every fuzz target (`FuzzServer`, `FuzzSafeTensors`, `FuzzWorkerReplies`):
/// - `--write-seeds DIR` writes the target's seed corpus;
/// - built with `-Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING` (`scripts/fuzz.sh`) it is a libFuzzer binary
///   and takes libFuzzer's options;
/// - in a plain build it replays the inputs it is given (files, or directories of files, sorted by name), so
///   the corpus and any saved crash run without libFuzzer, in tests or under a debugger.
public enum FuzzMain {
    /// - Parameters:
    ///   - name: the target, for messages.
    ///   - writeSeeds: writes the seed corpus into a directory; returns how many files.
    ///   - outcome: runs one input when replaying and says what became of it (counted in the summary).
    ///   - callback: libFuzzer's per-input function.
    public static func run(
        name: String, writeSeeds: (String) throws -> Int, outcome: (Data) -> String,
        callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> Never {
        let args = CommandLine.arguments
        if args.count == 3, args[1] == "--write-seeds" {
            do {
                let n = try writeSeeds(args[2])
                print("wrote \(n) seed files to \(args[2])")
                exit(0)
            } catch {
                FileHandle.standardError.write(Data("--write-seeds \(args[2]): \(error)\n".utf8))
                exit(1)
            }
        }
        #if FUZZING
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            exit(runFuzzerDriver(&argc, &argv, callback))
        #else
            exit(replay(Array(args.dropFirst()), name: name, outcome: outcome))
        #endif
    }

    /// Runs every input once, in order; returns the exit status.
    static func replay(_ paths: [String], name: String, outcome: (Data) -> String) -> CInt {
        guard !paths.isEmpty else {
            FileHandle.standardError.write(Data("usage: \(name) INPUT... (files or directories), or \(name) --write-seeds DIR\n".utf8))
            return 64
        }
        var files: [String] = []
        for p in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("input \(p) does not exist\n".utf8))
                return 66
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: p)) ?? []
                files += names.sorted().filter { !$0.hasPrefix(".") }.map { "\(p)/\($0)" }
            } else {
                files.append(p)
            }
        }
        var bytes = 0
        var outcomes: [String: Int] = [:]
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else {
                FileHandle.standardError.write(Data("input \(f) cannot be read\n".utf8))
                return 66
            }
            bytes += data.count
            outcomes[outcome(data), default: 0] += 1
        }
        let summary = outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("replayed \(files.count) inputs (\(bytes) bytes): no crash (\(summary))")
        return 0
    }
}
