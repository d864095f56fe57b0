import Foundation
import SafeTensors
import Tensors
import VariableScopes

/// Loading variables saved by the parameter servers (safetensors keyed by TensorFlow variable names).
public enum Checkpoints {
    public enum Error: Swift.Error, CustomStringConvertible {
        case noFiles(String)
        case missing(variable: String, directory: String)
        case shape(variable: String, file: [Int], model: [Int])
        /// A file that cannot be used (and, for a server's checkpoints, no older one of that server can either).
        case damaged(path: String, reason: String)

        public var description: String {
            switch self {
            case .noFiles(let d): return "no .safetensors files in \(d): pass the servers' --checkpoint-dir"
            case .missing(let v, let d):
                return "no checkpoint in \(d) holds variable \(v): the model and the checkpoint differ"
            case .shape(let v, let f, let m):
                return "variable \(v) has shape \(formatShape(f)) in the checkpoint and \(formatShape(m)) in the model"
            case .damaged(let p, let r): return "checkpoint \(p) cannot be restored: \(r)"
            }
        }

        /// Whether the input is missing (exit 66) rather than unusable (exit 65).
        public var isMissingInput: Bool {
            switch self {
            case .noFiles, .missing, .shape: return true
            case .damaged: return false
            }
        }
    }

    /// The files of `directory` by server, each server's newest first (by the sequence in its metadata,
    /// or in its name `<server>-<8 digits>.safetensors` when its header cannot be read); any other
    /// `.safetensors` file alone.
    public static func candidates(in directory: String) -> [[String]] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".safetensors")
        }.sorted()
        var byServer: [String: [(Int, String)]] = [:]
        var plain: [[String]] = []
        for f in files {
            let path = "\(directory)/\(f)"
            let meta = (try? SafeTensors.metadata(path)) ?? [:]
            if let server = meta["server"], let seq = meta["sequence"].flatMap({ Int($0) }) {
                byServer[server, default: []].append((seq, path))
            } else if let (server, seq) = nameAndSequence(f) {
                byServer[server, default: []].append((seq, path))
            } else {
                plain.append([path])
            }
        }
        return byServer.keys.sorted().map { key in byServer[key]!.sorted { $0.0 > $1.0 }.map(\.1) } + plain
    }

    /// `ps-0-00000012.safetensors` → ("ps-0", 12).
    static func nameAndSequence(_ file: String) -> (String, Int)? {
        let stem = file.dropLast(".safetensors".count)
        guard let dash = stem.lastIndex(of: "-") else { return nil }
        let digits = stem[stem.index(after: dash)...]
        guard digits.count == 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else {
            return nil
        }
        return (String(stem[..<dash]), n)
    }

    /// The files to read in `directory`: for servers' checkpoints, each server's newest (highest
    /// `sequence` in its metadata); any other `.safetensors` file as it is.
    public static func newestFiles(in directory: String) -> [String] {
        candidates(in: directory).compactMap(\.first)
    }

    /// Sets every trainable variable of `graph` from the `.safetensors` files in `directory` (optimizer
    /// slots, saved under `optimizer/`, are not model variables and are skipped). A server's newest file
    /// that is damaged (checksum, layout, values that are not finite) is reported through `warn` and its
    /// next older file used instead; a file without a checksum (an older version's) is reported too.
    /// - Throws: `Checkpoints.Error`: `.damaged` naming the file and what is wrong when no file of a
    ///   server can be used.
    public static func restore(_ graph: Graph, from directory: String, warn: (String) -> Void = { _ in }) throws {
        // Servers beside a run replace their files (`--keep-checkpoints` removes the oldest): files listed a
        // moment ago can be gone when read, which is newer ones arriving, not damage. List again.
        var attempt = 0
        while true {
            var warnings: [String] = []
            do {
                try restoreOnce(graph, from: directory, warn: { warnings.append($0) })
                warnings.forEach(warn)
                return
            } catch Error.damaged(let path, _) where attempt < 10 && vanished(path, in: directory, warnings: warnings) {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
            }
        }
    }

    /// Whether a restore failed because files disappeared under it: the file named is gone, or a warning
    /// names a file that is gone.
    static func vanished(_ path: String, in directory: String, warnings: [String]) -> Bool {
        let gone = { (p: String) in p.hasSuffix(".safetensors") && !FileManager.default.fileExists(atPath: p) }
        if gone(path) { return true }
        return warnings.contains { w in w.split(separator: " ").contains { gone(String($0)) } }
    }

    static func restoreOnce(_ graph: Graph, from directory: String, warn: (String) -> Void) throws {
        let groups = candidates(in: directory)
        guard !groups.isEmpty else { throw Error.noFiles(directory) }
        var all: [String: SafeTensors.Entry] = [:]
        var slices: [String: TensorSlice] = [:]
        var held: [(path: String, names: [String], placement: String?)] = []
        for group in groups {
            var failures: [(String, String)] = []
            var loaded: (file: SafeTensors.File, path: String)?
            for path in group {
                do {
                    let file = try SafeTensors.load(path)
                    // Servers' format 2 always carries a checksum (CheckpointStore.formatVersion2): one that
                    // is missing was lost to damage.
                    if file.metadata["format"] == "scoped-trainer-ps/2" && !file.checksumVerified {
                        throw Error.damaged(
                            path: path, reason: "format scoped-trainer-ps/2 but no checksum in its metadata")
                    }
                    loaded = (file, path)
                    for (p, reason) in failures {
                        warn("checkpoint \(p) cannot be restored: \(reason); using the older \(path) instead")
                    }
                    if !file.checksumVerified && file.metadata["server"] != nil {
                        warn(
                            "checkpoint \(path) carries no checksum (written by an older version): damage to it cannot be detected"
                        )
                    }
                    break
                } catch Error.damaged(_, let reason) {
                    failures.append((path, reason))
                } catch {
                    failures.append((path, "\(error)"))
                }
            }
            guard let (file, path) = loaded else {
                let (path, reason) = failures[0]
                let older = failures.count > 1 ? " (and no older file of that server can be used either)" : ""
                throw Error.damaged(path: path, reason: reason + older)
            }
            held.append((path, file.tensors.keys.sorted(), file.metadata["placement"]))
            if let reason = TensorSlice.duplicate(in: held) { throw Error.damaged(path: directory, reason: reason) }
            all.merge(file.tensors.filter { !$0.key.hasPrefix("optimizer/") }) { a, _ in a }
            slices.merge(TensorSlice.records(in: file.metadata)) { a, _ in a }
        }
        let wholes: [String: (shape: [Int], scalars: [Float])]
        do { wholes = try TensorSlice.assemble(all.mapValues { ($0.shape, $0.scalars) }, slices: slices) } catch {
            throw Error.damaged(path: directory, reason: "\(error)")
        }
        // Each variable of the model from the whole it is, or is a part of: any partitioning into any other.
        var done = Set<String>()
        for v in graph.trainableVariables {
            let name = v.sliceInfo?.fullName ?? v.name
            guard done.insert(name).inserted else { continue }
            let target = v.sliceInfo.flatMap { graph.storedVariable($0.fullName) } ?? v
            guard let e = wholes[name] else { throw Error.missing(variable: name, directory: directory) }
            guard e.shape == target.shape else { throw Error.shape(variable: name, file: e.shape, model: target.shape) }
            target.assign(e.scalars)
        }
    }
}
