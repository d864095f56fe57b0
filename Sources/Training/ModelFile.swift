import Datasets
import Foundation
import Model
import SafeTensors
import VariableScopes

/// A trained model on disk: every variable of the graph, keyed by its TensorFlow name, plus the data
/// normalisation and sizes in the safetensors metadata: what a reader needs to rebuild the model and its
/// scaling without the training data. (This project writes it; it has no predict command that reads it.)
public enum ModelFile {
    /// Writes `model`'s variables and `dataset`'s normaliser to `path`.
    public static func save(_ model: Seq2Seq, dataset: Dataset, to path: String) throws {
        let c = model.config
        let encoder = JSONEncoder()
        let metadata = [
            "format": "scoped-trainer/seq2seq-attention",
            "series": dataset.series,
            "scaling": dataset.scaling.rawValue,
            "season": dataset.season.map(String.init) ?? "",
            "normalizer": String(decoding: try encoder.encode(dataset.normalizer), as: UTF8.self),
            "config": String(decoding: try encoder.encode(c), as: UTF8.self),
        ]
        let tensors = model.graph.globalVariables.filter { !$0.isPartitioned }.map {
            (name: $0.name, shape: $0.shape, scalars: Array($0.value))
        }
        try SafeTensors.write(tensors, to: path, metadata: metadata)
    }

    /// Reads the normaliser saved by `save`.
    public static func normalizer(at path: String) throws -> Normalizer? {
        guard let meta = try SafeTensors.metadata(path)["normalizer"] else { return nil }
        return try JSONDecoder().decode(Normalizer.self, from: Data(meta.utf8))
    }
}
