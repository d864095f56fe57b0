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

        public var description: String {
            switch self {
            case .noFiles(let d): return "no .safetensors files in \(d): pass the servers' --checkpoint-dir"
            case .missing(let v, let d):
                return "no checkpoint in \(d) holds variable \(v): the model and the checkpoint differ"
            case .shape(let v, let f, let m):
                return "variable \(v) has shape \(formatShape(f)) in the checkpoint and \(formatShape(m)) in the model"
            }
        }
    }

    /// The files to read in `directory`: for servers' checkpoints, each server's newest (highest
    /// `sequence` in its metadata); any other `.safetensors` file as it is.
    public static func newestFiles(in directory: String) -> [String] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".safetensors")
        }.sorted()
        var newest: [String: (Int, String)] = [:]
        var plain: [String] = []
        for f in files {
            let path = "\(directory)/\(f)"
            let meta = (try? SafeTensors.metadata(path)) ?? [:]
            if let server = meta["server"], let seq = meta["sequence"].flatMap({ Int($0) }) {
                if (newest[server]?.0 ?? -1) < seq { newest[server] = (seq, path) }
            } else {
                plain.append(path)
            }
        }
        return newest.keys.sorted().map { newest[$0]!.1 } + plain
    }

    /// Sets every trainable variable of `graph` from the `.safetensors` files in `directory` (optimizer
    /// slots, saved under `optimizer/`, are not model variables and are skipped).
    public static func restore(_ graph: Graph, from directory: String) throws {
        let files = newestFiles(in: directory)
        guard !files.isEmpty else { throw Error.noFiles(directory) }
        var all: [String: SafeTensors.Entry] = [:]
        for f in files { all.merge(try SafeTensors.read(f).filter { !$0.key.hasPrefix("optimizer/") }) { a, _ in a } }
        for v in graph.trainableVariables {
            guard let e = all[v.name] else { throw Error.missing(variable: v.name, directory: directory) }
            guard e.shape == v.shape else { throw Error.shape(variable: v.name, file: e.shape, model: v.shape) }
            v.assign(e.scalars)
        }
    }
}
