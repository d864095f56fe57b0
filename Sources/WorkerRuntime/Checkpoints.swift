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

    /// Sets every trainable variable of `graph` from the `.safetensors` files in `directory`.
    public static func restore(_ graph: Graph, from directory: String) throws {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".safetensors")
        }
        guard !files.isEmpty else { throw Error.noFiles(directory) }
        var all: [String: SafeTensors.Entry] = [:]
        for f in files { all.merge(try SafeTensors.read("\(directory)/\(f)")) { a, _ in a } }
        for v in graph.trainableVariables {
            guard let e = all[v.name] else { throw Error.missing(variable: v.name, directory: directory) }
            guard e.shape == v.shape else { throw Error.shape(variable: v.name, file: e.shape, model: v.shape) }
            v.assign(e.scalars)
        }
    }
}
