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
    /// Variables in the newest file: a server never replaces it with an emptier one.
    public private(set) var newestVariableCount = 0

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
        if let newest = files().last {
            sequence = newest.sequence
            newestVariableCount = (try? SafeTensors.metadata(newest.path)["variables"]).flatMap { countVariables($0) } ?? 0
        }
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
        let data = CheckpointStore.encode(state, config: config, sequence: next)
        let temporary = "\(directory)/.\(name)-\(next).tmp-\(getpid())"
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
                throw CheckpointError.write(temporary, reason: "cannot create the temporary file")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            try handle.write(contentsOf: data)
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
        newestVariableCount = state.variables.count
        let all = files()
        for old in all.dropLast(keep) { try? FileManager.default.removeItem(atPath: old.path) }
        return path
    }

    /// The newest checkpoint that reads back whole, with its path; nil when there is none.
    /// - Throws: `CheckpointError.corrupt` when files exist but none can be restored.
    public func newest() throws -> (state: ServerState, path: String)? {
        let all = files()
        guard !all.isEmpty else { return nil }
        var last: Error?
        for f in all.reversed() {
            do {
                return (try CheckpointStore.decode(path: f.path), f.path)
            } catch {
                last = error
            }
        }
        throw CheckpointError.corrupt(all.last!.path, reason: "\(last.map { "\($0)" } ?? "unreadable")")
    }

    // MARK: - Format

    struct VariableMeta: Codable {
        var name: String
        var dtype: String
        var step: Int
        var registeredBy: String
    }

    static func encode(_ state: ServerState, config: ServerConfig, sequence: Int) -> Data {
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
        let metas = state.variables.map { VariableMeta(name: $0.name, dtype: $0.dtype, step: $0.step, registeredBy: $0.registeredBy) }
        let metadata: [String: String] = [
            "format": "scoped-trainer-ps/1",
            "server": config.name, "mode": config.mode.rawValue, "optimizer": config.optimizer.description,
            "optimizer_kind": config.optimizer.kind.rawValue,
            "updates": "\(state.updates)", "step": "\(state.syncStep)", "sequence": "\(sequence)",
            "num_workers": state.numWorkers.map(String.init) ?? "",
            "scaling": state.scaling ?? "",
            "model": state.model ?? "",
            "variables": String(decoding: try! JSONEncoder().encode(metas), as: UTF8.self),
            "workers": String(decoding: try! JSONEncoder().encode(state.workers), as: UTF8.self),
        ]
        return SafeTensors.encode(tensors, metadata: metadata)
    }

    static func decode(path: String) throws -> ServerState {
        let tensors = try SafeTensors.read(path)
        let meta = try SafeTensors.metadata(path)
        guard meta["format"] == "scoped-trainer-ps/1" else {
            throw CheckpointError.corrupt(path, reason: "not a parameter-server checkpoint (no format metadata)")
        }
        guard let varsText = meta["variables"],
            let metas = try? JSONDecoder().decode([VariableMeta].self, from: Data(varsText.utf8)),
            let workersText = meta["workers"],
            let workers = try? JSONDecoder().decode([SavedWorker].self, from: Data(workersText.utf8)),
            let updates = meta["updates"].flatMap({ UInt64($0) }), let step = meta["step"].flatMap({ UInt64($0) })
        else { throw CheckpointError.corrupt(path, reason: "its metadata is incomplete") }
        // Numbers read back are checked like numbers from the wire: a damaged file is refused, not trusted.
        let numWorkers = meta["num_workers"].flatMap { $0.isEmpty ? nil : $0 }
        var workerCount: Int?
        if let text = numWorkers {
            guard let n = Int(text), (1...(1 << 16)).contains(n) else {
                throw CheckpointError.corrupt(path, reason: "num_workers is \(text), not a worker count in 1...65536")
            }
            workerCount = n
        }
        for w in workers {
            guard Int(w.index) < (workerCount ?? (1 << 16)) else {
                throw CheckpointError.corrupt(path, reason: "a worker record has index \(w.index), past num_workers")
            }
        }
        var variables: [SavedVariable] = []
        for m in metas {
            guard (0...(1 << 48)).contains(m.step) else {
                throw CheckpointError.corrupt(path, reason: "variable \(m.name) has update count \(m.step)")
            }
            guard let t = tensors[m.name] else { throw CheckpointError.corrupt(path, reason: "variable \(m.name) is missing") }
            let zeros = [Float](repeating: 0, count: t.scalars.count)
            let first = tensors["optimizer/\(m.name)/m"]?.scalars ?? tensors["optimizer/\(m.name)/momentum"]?.scalars ?? zeros
            let second = tensors["optimizer/\(m.name)/v"]?.scalars ?? zeros
            guard first.count == t.scalars.count, second.count == t.scalars.count else {
                throw CheckpointError.corrupt(path, reason: "the optimizer slots of \(m.name) have the wrong size")
            }
            variables.append(
                SavedVariable(
                    name: m.name, shape: t.shape, dtype: m.dtype, value: t.scalars, first: first, second: second,
                    step: m.step, registeredBy: m.registeredBy))
        }
        return ServerState(
            variables: variables, updates: updates, syncStep: step,
            numWorkers: workerCount,
            scaling: meta["scaling"].flatMap { $0.isEmpty ? nil : $0 }, workers: workers,
            model: meta["model"].flatMap { $0.isEmpty || $0.utf8.count > Hello.maxModelBytes ? nil : $0 })
    }
}

private func countVariables(_ json: String) -> Int? {
    (try? JSONDecoder().decode([CheckpointStore.VariableMeta].self, from: Data(json.utf8)))?.count
}
