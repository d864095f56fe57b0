import Foundation

#if FUZZING
    /// libFuzzer's driver (`-sanitize=fuzzer` links it); see `Sources/FuzzServer/EntryPoint.swift` for why
    /// the program's own `main` hands its arguments to it.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt
#endif

/// `FuzzWorkerReplies` (a worker against a scripted, hostile server: every reply it reads): with `--write-seeds DIR`, writes the seed corpus; built with
/// `-Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING` (see `scripts/fuzz.sh`) it is a libFuzzer binary; in a
/// plain build it replays the files (or directories of files) it is given, so the corpus and any saved
/// crash run without libFuzzer, in tests or under a debugger.
@main
enum FuzzWorkerRepliesMain {
    static func main() {
        let args = CommandLine.arguments
        if args.count == 3, args[1] == "--write-seeds" {
            do {
                let n = try Seeds.write(to: args[2])
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
            exit(runFuzzerDriver(&argc, &argv, fuzzTestOneInput))
        #else
            exit(replay(Array(args.dropFirst())))
        #endif
    }

    /// Runs every input once, in order (directories sorted by name); returns the exit status.
    static func replay(_ paths: [String]) -> CInt {
        guard !paths.isEmpty else {
            FileHandle.standardError.write(
                Data(
                    "usage: FuzzWorkerReplies INPUT... (files or directories), or FuzzWorkerReplies --write-seeds DIR\n"
                        .utf8))
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
        var ran = 0
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else {
                FileHandle.standardError.write(Data("input \(f) cannot be read\n".utf8))
                return 66
            }
            bytes += data.count
            data.withUnsafeBytes { if runWorker(on: ReplyScript.parse($0)) { ran += 1 } }
        }
        let summary = "\(ran) worker runs"
        print("replayed \(files.count) inputs (\(bytes) bytes): no crash (\(summary))")
        return 0
    }
}
