import Foundation

#if FUZZING
    /// libFuzzer's driver (`-sanitize=fuzzer` links it). SwiftPM links every executable with
    /// `--defsym main=<module>_main`, so libFuzzer's own `main` is never used: this program's entry point
    /// hands its arguments to the driver instead.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt
#endif

/// `FuzzServer`: with `--write-seeds DIR`, writes the seed corpus; otherwise, built with
/// `-Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING` (see `scripts/fuzz.sh`) it is a libFuzzer binary and takes
/// libFuzzer's options; in a plain build it replays the inputs (files, or directories of files) it is
/// given, so the corpus and any saved crash can be run without libFuzzer, under a debugger or in tests.
@main
enum FuzzServerMain {
    static func main() {
        let args = CommandLine.arguments
        if args.count == 3, args[1] == "--write-seeds" {
            do {
                let n = try Seeds.write(to: args[2])
                print("wrote \(n) seed inputs to \(args[2])")
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
                Data("usage: FuzzServer INPUT... (files or directories), or FuzzServer --write-seeds DIR\n".utf8))
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
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else {
                FileHandle.standardError.write(Data("input \(f) cannot be read\n".utf8))
                return 66
            }
            bytes += data.count
            data.withUnsafeBytes { raw in
                _ = fuzzTestOneInput(raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
            }
        }
        print("replayed \(files.count) inputs (\(bytes) bytes): no crash")
        return 0
    }
}
