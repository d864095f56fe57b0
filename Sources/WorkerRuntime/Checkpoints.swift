import Foundation
import SafeTensors
import Tensors
import VariableScopes
import Wire

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
        let groups = candidates(in: directory)
        guard !groups.isEmpty else { throw Error.noFiles(directory) }
        var all: [String: SafeTensors.Entry] = [:]
        var slices: [String: SliceSpec] = [:]
        for group in groups {
            var failures: [(String, String)] = []
            var loaded: SafeTensors.File?
            for path in group {
                do {
                    let file = try SafeTensors.load(path)
                    // Servers' format 2 always carries a checksum (CheckpointStore.formatVersion2): one that
                    // is missing was lost to damage.
                    if file.metadata["format"] == "scoped-trainer-ps/2" && !file.checksumVerified {
                        throw Error.damaged(
                            path: path, reason: "format scoped-trainer-ps/2 but no checksum in its metadata")
                    }
                    loaded = file
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
            guard let file = loaded else {
                let (path, reason) = failures[0]
                let older = failures.count > 1 ? " (and no older file of that server can be used either)" : ""
                throw Error.damaged(path: path, reason: reason + older)
            }
            all.merge(file.tensors.filter { !$0.key.hasPrefix("optimizer/") }) { a, _ in a }
            slices.merge(sliceMetadata(file.metadata)) { a, _ in a }
        }
        let wholes = try assemble(all, slices: slices, directory: directory)
        // Each variable of the model from the whole it is, or is a part of: any partitioning into any other.
        var done = Set<String>()
        for v in graph.trainableVariables {
            let name = v.wholeName ?? v.name
            guard done.insert(name).inserted else { continue }
            guard let target = v.wholeName.flatMap({ graph.storedVariable($0) }) ?? Optional(v) else { continue }
            guard let e = wholes[name] else { throw Error.missing(variable: name, directory: directory) }
            guard e.shape == target.shape else { throw Error.shape(variable: name, file: e.shape, model: target.shape) }
            target.assign(e.scalars)
        }
    }

    /// The parts' slice records in a server checkpoint's `variables` metadata, by part name.
    static func sliceMetadata(_ metadata: [String: String]) -> [String: SliceSpec] {
        struct Meta: Decodable {
            var name: String
            var slice: SliceSpec?
        }
        guard let text = metadata["variables"], let metas = try? JSONDecoder().decode([Meta].self, from: Data(text.utf8)) else {
            return [:]
        }
        var out: [String: SliceSpec] = [:]
        for m in metas { if let s = m.slice { out[m.name] = s } }
        return out
    }

    /// The whole variables of a checkpoint: tensors without a slice record as they are, parts put back in
    /// place in their whole (TensorFlow's `SaveSliceInfo`: full name, full shape, offset).
    /// - Throws: `Error.damaged` for a part that does not fit its whole, parts that overlap or leave a
    ///   gap, or a whole past the checkpoint's own size.
    static func assemble(
        _ tensors: [String: SafeTensors.Entry], slices: [String: SliceSpec], directory: String
    ) throws -> [String: (shape: [Int], scalars: [Float])] {
        var out: [String: (shape: [Int], scalars: [Float])] = [:]
        var covered: [String: Int] = [:]
        let available = tensors.values.reduce(0) { $0 + $1.scalars.count }
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            guard let slice = slices[name] else {
                out[name] = (t.shape, t.scalars)
                continue
            }
            let fail = { (why: String) in
                Error.damaged(path: directory, reason: "part \(name) of \(slice.fullName.prefix(200)) \(why)")
            }
            guard slice.fits(t.shape), let count = Limits.elementCount(slice.fullShape) else {
                throw fail("at offset \(formatShape(slice.offset)) does not fit the whole's shape \(formatShape(slice.fullShape))")
            }
            // A whole is never bigger than the parts a checkpoint holds: a record claiming more is damage.
            guard count <= available else { throw fail("claims a whole of \(count) elements, more than the checkpoint holds") }
            if out[slice.fullName] == nil {
                out[slice.fullName] = (slice.fullShape, [Float](repeating: 0, count: count))
            }
            guard out[slice.fullName]!.shape == slice.fullShape else {
                throw fail("says the whole has shape \(formatShape(slice.fullShape)); another part says \(formatShape(out[slice.fullName]!.shape))")
            }
            SliceCopy.insert(t.scalars, shape: t.shape, into: &out[slice.fullName]!.scalars, fullShape: slice.fullShape, at: slice.offset)
            covered[slice.fullName, default: 0] += t.scalars.count
        }
        for (name, n) in covered where n != out[name]!.scalars.count {
            throw Error.damaged(
                path: directory,
                reason: "the parts of \(name) hold \(n) elements but the whole \(formatShape(out[name]!.shape)) has \(out[name]!.scalars.count): parts are missing or overlap")
        }
        return out
    }
}

/// Copies between a part and its place in a row-major whole, along any axes.
public enum SliceCopy {
    /// Writes `part` (of `shape`) into `full` (of `fullShape`) at `offset`. The caller checked that it fits.
    public static func insert(_ part: [Float], shape: [Int], into full: inout [Float], fullShape: [Int], at offset: [Int]) {
        walk(shape: shape, fullShape: fullShape, offset: offset) { partStart, fullStart, n in
            for k in 0..<n { full[fullStart + k] = part[partStart + k] }
        }
    }

    /// Calls `body(partIndex, fullIndex, count)` for each contiguous run (the last axis) of the part.
    static func walk(shape: [Int], fullShape: [Int], offset: [Int], _ body: (Int, Int, Int) -> Void) {
        guard !shape.isEmpty else {
            body(0, 0, 1)
            return
        }
        guard !shape.contains(0) else { return }
        let rank = shape.count
        let run = shape[rank - 1]
        // Row-major strides of the whole.
        var strides = [Int](repeating: 1, count: rank)
        for k in stride(from: rank - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * fullShape[k + 1] }
        var index = [Int](repeating: 0, count: rank)  // over all axes but the last
        var partStart = 0
        while true {
            var fullStart = 0
            for k in 0..<rank { fullStart += (offset[k] + (k == rank - 1 ? 0 : index[k])) * strides[k] }
            body(partStart, fullStart, run)
            partStart += run
            var k = rank - 2
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
            if k < 0 { return }
        }
    }
}
