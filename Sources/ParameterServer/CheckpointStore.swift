import Foundation
import Optimizers
import SafeTensors
import Wire

/// Why a checkpoint directory cannot be used; each message names the directory or file.
public enum CheckpointError: Error, CustomStringConvertible {
    case directory(String, reason: String)
    case write(String, reason: String)
    case corrupt(String, reason: String)

    public var description: String {
        switch self {
        case .directory(let d, let r): return "--checkpoint-dir \(d) \(r)"
        case .write(let p, let r): return "cannot write checkpoint \(p): \(r)"
        case .corrupt(let p, let r): return "checkpoint \(p) is corrupt and cannot be restored: \(r)"
        }
    }
}

/// A server's checkpoints in one directory: `<name>-<sequence>.safetensors`, written atomically
/// (temporary file, fsync, rename, fsync of the directory), the newest `keep` kept.
///
/// Each file holds the variables under their TensorFlow names, the optimizer slots under
/// `optimizer/<variable>/m` and `optimizer/<variable>/v` (Adam) or `optimizer/<variable>/momentum`, and in
/// its metadata the server, mode, optimizer, update count, sync step, per-variable update counts and the
/// workers' dedupe records. Python's `safetensors` reads it as it is.
public final class CheckpointStore {
    public let directory: String
    public let name: String
    public let keep: Int
    /// The sequence number of the newest file written or restored.
    public private(set) var sequence = 0
    /// Variables in the newest file that reads back whole: a server never replaces it with an emptier
    /// one. A newer file that cannot be restored does not count (its metadata may say anything), so it can
    /// never make every later checkpoint be skipped.
    public var newestVariableCount: Int {
        if let known = knownVariableCount { return known }
        let n = (try? restore(limits: limits))?.state.variables.count ?? 0
        knownVariableCount = n
        return n
    }
    private var knownVariableCount: Int?
    /// The bounds a restored state is checked against (the server's own limits).
    public var limits = ServerLimits()

    /// Opens (creating if needed) the directory and proves it writable now, not at the end of a long run.
    /// - Throws: `CheckpointError.directory` naming it.
    public init(directory: String, name: String, keep: Int = 3) throws {
        self.directory = directory
        self.name = name
        self.keep = max(1, keep)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CheckpointError.directory(directory, reason: "is a file, not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw CheckpointError.directory(directory, reason: "does not exist and cannot be created: \(error.localizedDescription)")
            }
        }
        let probe = "\(directory)/.\(name).probe-\(getpid())"
        guard FileManager.default.createFile(atPath: probe, contents: Data([1])) else {
            throw CheckpointError.directory(directory, reason: "is not writable (by user \(getuid())); fix its permissions or choose another")
        }
        try? FileManager.default.removeItem(atPath: probe)
        if let newest = files().last { sequence = newest.sequence }
    }

    /// This server's checkpoint files, oldest first.
    public func files() -> [(sequence: Int, path: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let prefix = name + "-"
        return entries.compactMap { f -> (Int, String)? in
            guard f.hasPrefix(prefix), f.hasSuffix(".safetensors") else { return nil }
            let middle = f.dropFirst(prefix.count).dropLast(".safetensors".count)
            guard middle.count == 8, let n = Int(middle) else { return nil }
            return (n, "\(directory)/\(f)")
        }.sorted { $0.0 < $1.0 }
    }

    /// Writes `state` as the next checkpoint and removes the oldest beyond `keep`.
    /// - Returns: the path written, or nil when `state` holds fewer variables than the newest file
    ///   (a server that lost its variables must not overwrite good ones).
    /// - Throws: `CheckpointError.write` naming the file.
    @discardableResult
    public func write(_ state: ServerState, config: ServerConfig) throws -> String? {
        guard !state.variables.isEmpty, state.variables.count >= newestVariableCount else { return nil }
        let next = sequence + 1
        let path = "\(directory)/\(name)-\(String(format: "%08d", next)).safetensors"
        let (tensors, metadata) = CheckpointStore.contents(state, config: config, sequence: next)
        let temporary = "\(directory)/.\(name)-\(next).tmp-\(getpid())"
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
                throw CheckpointError.write(temporary, reason: "cannot create the temporary file")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            // Streamed from the state's arrays: no in-memory copy of the file.
            try SafeTensors.write(tensors, metadata: metadata, checksum: true, to: handle)
            try handle.synchronize()
            try handle.close()
            guard rename(temporary, path) == 0 else {
                throw CheckpointError.write(path, reason: String(cString: strerror(errno)))
            }
            let dir = open(directory, O_RDONLY)
            if dir >= 0 {
                fsync(dir)
                close(dir)
            }
        } catch let e as CheckpointError {
            try? FileManager.default.removeItem(atPath: temporary)
            throw e
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CheckpointError.write(path, reason: error.localizedDescription)
        }
        sequence = next
        knownVariableCount = state.variables.count
        let all = files()
        for old in all.dropLast(keep) { try? FileManager.default.removeItem(atPath: old.path) }
        return path
    }

    /// The newest checkpoint that reads back whole, with its path; nil when there is none.
    /// - Throws: `CheckpointError.corrupt` when files exist but none can be restored.
    public func newest() throws -> (state: ServerState, path: String)? {
        try restore(limits: limits).map { ($0.state, $0.path) }
    }

    /// The newest checkpoint that reads back whole, with the newer files that could not be used and why,
    /// so that a server can say which file it skipped and which older one it restored instead.
    /// - Parameters:
    ///   - limits: the server's limits; a checkpoint beyond them is refused, as a request would be.
    ///   - strict: refuse to fall back: when the newest file is damaged, throw instead (`--strict-restore`).
    /// - Returns: nil when there is no checkpoint file at all.
    /// - Throws: `CheckpointError.corrupt` naming the newest file and what is wrong with it, when no file
    ///   can be restored (or, with `strict`, when the newest cannot).
    public func restore(limits: ServerLimits, strict: Bool = false) throws -> Restoration? {
        let all = files()
        guard let newestFile = all.last else { return nil }
        var skipped: [Restoration.Skipped] = []
        for f in all.reversed() {
            do {
                let file = try CheckpointStore.read(path: f.path, limits: limits)
                knownVariableCount = file.state.variables.count
                return Restoration(
                    state: file.state, path: f.path, checksumVerified: file.checksumVerified, skipped: skipped,
                    mode: file.writtenBy.mode, optimizer: file.writtenBy.optimizer, optimizerKind: file.writtenBy.kind)
            } catch {
                let reason = CheckpointStore.reason(error)
                if strict {
                    throw CheckpointError.corrupt(
                        f.path, reason: "\(reason); --strict-restore refuses to fall back to an older checkpoint")
                }
                skipped.append(Restoration.Skipped(path: f.path, reason: reason))
            }
        }
        knownVariableCount = 0
        let detail = skipped.map { "\($0.path): \($0.reason)" }.joined(separator: "; ")
        throw CheckpointError.corrupt(
            newestFile.path,
            reason: all.count == 1 ? skipped.first?.reason ?? "unreadable" : "and so is every older one (\(detail))")
    }

    /// What is wrong with a file, without repeating its path when the error already names it.
    static func reason(_ error: Error) -> String {
        switch error {
        case CheckpointError.corrupt(_, let r): return r
        case let e as SafeTensors.Error: return "\(e)"
        default: return "\(error)"
        }
    }

    // MARK: - Format

    /// The metadata `format` of files written now: version 1 plus a checksum (`SafeTensors.Checksum`).
    public static let formatVersion2 = "scoped-trainer-ps/2"

    /// The largest update count or step a checkpoint may hold: far beyond any real run (2^48), and far
    /// from the ends of the integer types the rules and the workers count in, so `+ 1` never overflows.
    public static let maxCount: UInt64 = 1 << 48

    /// Reads and checks one checkpoint file.
    /// - Throws: `CheckpointError.corrupt` or `SafeTensors.Error`, naming the file and the field.
    static func read(path: String, limits: ServerLimits) throws -> (
        state: ServerState, checksumVerified: Bool, writtenBy: (mode: String?, optimizer: String?, kind: String?)
    ) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.corrupt(path, reason: "cannot be read")
        }
        let (state, verified, meta) = try decode(data, path: path, limits: limits)
        let short = { (s: String?) in s.flatMap { $0.isEmpty || $0.utf8.count > 200 ? nil : $0 } }
        return (state, verified, (short(meta["mode"]), short(meta["optimizer"]), short(meta["optimizer_kind"])))
    }

    struct VariableMeta: Codable {
        var name: String
        var dtype: String
        var step: Int
        var registeredBy: String
        /// For a part of a partitioned variable: its full name, full shape and offset (TensorFlow's
        /// `SaveSliceInfo`), so that any reader can put the whole variable back together.
        var slice: SliceSpec?
    }

    /// The bytes of a checkpoint of `state` (format 2, with its checksum); `write` puts them on disk.
    public static func encode(_ state: ServerState, config: ServerConfig, sequence: Int) -> Data {
        let (tensors, metadata) = contents(state, config: config, sequence: sequence)
        return SafeTensors.encode(tensors, metadata: metadata, checksum: true)
    }

    /// A checkpoint's tensors (sharing the state's arrays) and metadata.
    static func contents(_ state: ServerState, config: ServerConfig, sequence: Int) -> (
        tensors: [(name: String, shape: [Int], scalars: [Float])], metadata: [String: String]
    ) {
        var tensors: [(name: String, shape: [Int], scalars: [Float])] = []
        for v in state.variables { tensors.append((v.name, v.shape, v.value)) }
        for v in state.variables {
            switch config.optimizer.kind {
            case .sgd: break
            case .momentum: tensors.append(("optimizer/\(v.name)/momentum", v.shape, v.first))
            case .adam:
                tensors.append(("optimizer/\(v.name)/m", v.shape, v.first))
                tensors.append(("optimizer/\(v.name)/v", v.shape, v.second))
            }
        }
        let metas = state.variables.map { VariableMeta(name: $0.name, dtype: $0.dtype, step: $0.step, registeredBy: $0.registeredBy, slice: $0.slice) }
        // Sorted keys: the same state gives the same bytes in every process (fuzz seeds, diffs).
        let json = JSONEncoder()
        json.outputFormatting = .sortedKeys
        let metadata: [String: String] = [
            "format": formatVersion2,
            "server": config.name, "mode": config.mode.rawValue, "optimizer": config.optimizer.description,
            "optimizer_kind": config.optimizer.kind.rawValue,
            "updates": "\(state.updates)", "step": "\(state.syncStep)", "sequence": "\(sequence)",
            "num_workers": state.numWorkers.map(String.init) ?? "",
            "scaling": state.scaling ?? "",
            "partitioning": state.partitioning ?? "",
            "placement": state.placement ?? "",
            "model": state.model ?? "",
            "variables": String(decoding: try! json.encode(metas), as: UTF8.self),
            "workers": String(decoding: try! json.encode(state.workers), as: UTF8.self),
        ]
        return (tensors, metadata)
    }

    /// Decodes a checkpoint's bytes and checks every number in it like a number from the wire: against
    /// the server's limits, and overflow-safe. A damaged file is refused naming the field, never trusted.
    /// - Parameters:
    ///   - path: names the file in errors.
    ///   - limits: the server's limits (variables, elements, bytes, rank, name length, workers).
    /// - Returns: the state, and whether a checksum vouched for the file (false: written by an older version).
    /// - Throws: `CheckpointError.corrupt` or `SafeTensors.Error`, naming the file and the field.
    public static func decodeState(_ data: Data, path: String, limits: ServerLimits = ServerLimits()) throws
        -> (state: ServerState, checksumVerified: Bool)
    {
        let (state, verified, _) = try decode(data, path: path, limits: limits)
        return (state, verified)
    }

    /// `decodeState`, with the file's metadata for what wrote it.
    static func decode(_ data: Data, path: String, limits: ServerLimits) throws
        -> (state: ServerState, checksumVerified: Bool, metadata: [String: String])
    {
        let file = try SafeTensors.decodeFile(data, path: path)
        let tensors = file.tensors
        let meta = file.metadata
        func corrupt(_ reason: String) -> CheckpointError { .corrupt(path, reason: reason) }
        switch meta["format"] {
        case formatVersion2?:
            // Version 2 always carries a checksum: one that is missing was lost to damage (a flipped bit
            // in the word "checksum" hides it), not left out.
            guard file.checksumVerified else { throw corrupt("format \(formatVersion2) but no checksum in its metadata") }
        case "scoped-trainer-ps/1"?:
            break  // Written before checksums: accepted, and the caller warns.
        default:
            throw corrupt("not a parameter-server checkpoint (metadata format is \(meta["format"].map { "'\($0.prefix(40))'" } ?? "missing"))")
        }
        func text(_ key: String) throws -> String {
            guard let v = meta[key] else { throw corrupt("its metadata has no \(key)") }
            return v
        }
        func count(_ key: String) throws -> UInt64 {
            let t = try text(key)
            guard t.allSatisfy(\.isASCII), t.allSatisfy(\.isNumber), let n = UInt64(t), n <= maxCount else {
                throw corrupt("metadata \(key) is '\(t.prefix(40))', not a whole number in 0...\(maxCount)")
            }
            return n
        }
        let updates = try count("updates")
        let step = try count("step")
        let metas: [VariableMeta]
        do { metas = try JSONDecoder().decode([VariableMeta].self, from: Data(try text("variables").utf8)) } catch {
            throw corrupt("metadata variables is not a list of {name, dtype, step, registeredBy[, slice]}: \(brief(error))")
        }
        let workers: [SavedWorker]
        do { workers = try JSONDecoder().decode([SavedWorker].self, from: Data(try text("workers").utf8)) } catch {
            throw corrupt(
                "metadata workers is not a list of {index, incarnation, lastPushRequest, lastPushedStep, done}: \(brief(error))")
        }
        // The scaling is compared with every worker's hello: a damaged one would refuse them all.
        if let scaling = meta["scaling"], scaling.utf8.count > 64 || !scaling.allSatisfy({ $0.isASCII && !$0.isWhitespace }) {
            throw corrupt("metadata scaling is '\(scaling.prefix(40))', not a scaling label (relative, global, seasonal:P, seasonal-difference:P)")
        }
        let maxWorkers = min(limits.maxWorkers, 1 << 16)
        var workerCount: Int?
        if let t = meta["num_workers"], !t.isEmpty {
            guard t.allSatisfy(\.isASCII), t.allSatisfy(\.isNumber), let n = Int(t), (1...maxWorkers).contains(n) else {
                throw corrupt(
                    "num_workers is \(t.prefix(40)), not a worker count in 1...\(maxWorkers) (--max-workers \(limits.maxWorkers))")
            }
            workerCount = n
        }
        var seen = Set<UInt32>()
        for w in workers {
            guard Int(w.index) < (workerCount ?? maxWorkers) else {
                throw corrupt(
                    "a worker record has index \(w.index), past \(workerCount.map { "num_workers \($0)" } ?? "--max-workers \(maxWorkers)")")
            }
            guard seen.insert(w.index).inserted else { throw corrupt("worker \(w.index) has two records") }
            guard w.lastPushedStep <= maxCount else {
                throw corrupt("worker \(w.index)'s lastPushedStep is \(w.lastPushedStep), past \(maxCount)")
            }
        }
        guard metas.count <= limits.maxVariables else {
            throw corrupt("it lists \(metas.count) variables, more than --max-variables \(limits.maxVariables)")
        }
        let slotNames: [String]
        switch meta["optimizer_kind"] {
        case "adam": slotNames = ["m", "v"]
        case "momentum": slotNames = ["momentum"]
        default: slotNames = []
        }
        var variables: [SavedVariable] = []
        var used = Set<String>()
        var bytes = 0
        for m in metas {
            guard !m.name.isEmpty, m.name.utf8.count <= limits.maxNameLength else {
                throw corrupt("a variable name is empty or longer than \(limits.maxNameLength) bytes")
            }
            guard !used.contains(m.name) else { throw corrupt("variable \(m.name) is listed twice") }
            guard m.dtype.utf8.count <= 32, m.registeredBy.utf8.count <= limits.maxNameLength else {
                throw corrupt("variable \(m.name) has a dtype or registeredBy longer than any a server writes")
            }
            guard (0...Int(maxCount)).contains(m.step) else {
                throw corrupt("variable \(m.name) has update count \(m.step), not in 0...\(maxCount)")
            }
            guard let t = tensors[m.name] else { throw corrupt("variable \(m.name) is listed but its tensor is missing") }
            if let slice = m.slice {
                guard slice.fits(t.shape), !slice.fullName.isEmpty, slice.fullName.utf8.count <= limits.maxNameLength else {
                    throw corrupt("variable \(m.name)'s slice (of \(slice.fullName.prefix(80)) \(slice.fullShape) at \(slice.offset)) does not fit its shape \(t.shape)")
                }
            }
            used.insert(m.name)
            guard t.shape.count <= limits.maxRank else {
                throw corrupt("variable \(m.name) has rank \(t.shape.count), more than \(limits.maxRank)")
            }
            guard t.scalars.count <= limits.maxVariableElements else {
                throw corrupt(
                    "variable \(m.name) has \(t.scalars.count) elements, more than --max-variable-elements \(limits.maxVariableElements)")
            }
            // Values and two slots, as the rules count them; no overflow: counts are bounded above.
            bytes += t.scalars.count * 12
            guard bytes <= limits.maxTotalBytes else {
                throw corrupt("its variables need more than --max-total-bytes \(limits.maxTotalBytes)")
            }
            var slots: [String: [Float]] = [:]
            for k in ["m", "v", "momentum"] {
                let slotName = "optimizer/\(m.name)/\(k)"
                guard let s = tensors[slotName] else { continue }
                guard slotNames.contains(k) else {
                    throw corrupt("tensor \(slotName) is not a slot of optimizer \(meta["optimizer_kind"] ?? "(none)")")
                }
                guard s.shape == t.shape else {
                    throw corrupt(
                        "optimizer slot \(slotName) has shape \(s.shape), but variable \(m.name) has \(t.shape)")
                }
                slots[k] = s.scalars
                used.insert(slotName)
            }
            let zeros = [Float](repeating: 0, count: t.scalars.count)
            variables.append(
                SavedVariable(
                    name: m.name, shape: t.shape, dtype: m.dtype, value: t.scalars,
                    first: slots["m"] ?? slots["momentum"] ?? zeros, second: slots["v"] ?? zeros,
                    step: m.step, registeredBy: m.registeredBy, slice: m.slice))
        }
        if let stray = tensors.keys.sorted().first(where: { !used.contains($0) }) {
            throw corrupt("tensor \(stray) is neither a listed variable nor one of its optimizer slots")
        }
        let state = ServerState(
            variables: variables, updates: updates, syncStep: step, numWorkers: workerCount,
            scaling: meta["scaling"].flatMap { $0.isEmpty ? nil : $0 },
            partitioning: meta["partitioning"].flatMap { $0.isEmpty || $0.utf8.count > 256 ? nil : $0 },
            placement: meta["placement"].flatMap { $0.isEmpty || $0.utf8.count > ServerCore.maxPlacementBytes ? nil : $0 },
            workers: workers,
            model: meta["model"].flatMap { $0.isEmpty || $0.utf8.count > Hello.maxModelBytes ? nil : $0 })
        return (state, file.checksumVerified, meta)
    }

    /// A decoding error in a few words (the field it stopped at).
    static func brief(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return "\(p.isEmpty ? "" : "at \(p): ")\(c.debugDescription)"
        case .keyNotFound(let k, let c):
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return "\(p.isEmpty ? "" : "at \(p): ")no \(k.stringValue)"
        @unknown default: return "\(e)"
        }
    }
}

/// A checkpoint chosen to restore from, with the newer files passed over.
public struct Restoration {
    /// A newer file that could not be used, and why.
    public struct Skipped: Sendable, Equatable {
        public let path: String
        public let reason: String
    }

    public let state: ServerState
    public let path: String
    /// False for a file written without a checksum (by an older version): damage to it cannot be seen.
    public let checksumVerified: Bool
    /// Newer files that could not be restored, newest first.
    public let skipped: [Skipped]
    /// The writing server's `--mode` and optimizer (with its settings), when its metadata says.
    public var mode: String?
    public var optimizer: String?
    /// Its optimizer's kind (`optimizer_kind`: adam, momentum, sgd), which names its slots.
    public var optimizerKind: String?

    /// The state for a server of `config`, and what to warn of. Another mode or optimizer is allowed (a job
    /// may switch), but not silently; and the optimizer's kind decides whether the slots mean anything here:
    /// Adam's first moment is no momentum, so another kind's slots start from zero, and with them each
    /// variable's optimizer step (Adam's bias correction counts from it).
    public func adapted(to config: ServerConfig) -> (state: ServerState, warnings: [String]) {
        var state = self.state
        var warnings: [String] = []
        let (mode, optimizer, kind) = (config.mode.rawValue, config.optimizer.description, config.optimizer.kind.rawValue)
        if let written = self.mode, written != mode {
            warnings.append("checkpoint \(path) was written by a --mode \(written) server; this one runs --mode \(mode)")
        }
        let sameKind = (optimizerKind ?? kind) == kind
        if let written = self.optimizer ?? optimizerKind, written != optimizer || !sameKind {
            warnings.append(
                "checkpoint \(path) was written with optimizer \(written); this server runs \(optimizer): "
                    + (sameKind
                        ? "the same optimizer with other settings, so its slots carry over"
                        : "the variables are restored, and the new optimizer's slots start from zero"))
        }
        if !sameKind {
            for i in state.variables.indices {
                let n = state.variables[i].value.count
                state.variables[i].first = [Float](repeating: 0, count: n)
                state.variables[i].second = [Float](repeating: 0, count: n)
                state.variables[i].step = 0
            }
        }
        return (state, warnings)
    }
}
