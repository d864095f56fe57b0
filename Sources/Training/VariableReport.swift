import Tensors
import VariableScopes

/// The seed's `print` loop as a report: one line per variable or part of a partitioned variable (its
/// full name, `.../kernel/part_0`, its own shape and bytes), then the duplicate-variable warnings, so a
/// user sees at once whether the decoder shares its weights and how a partitioner split the model.
public struct VariableReport {
    public let text: String

    public init(_ graph: Graph) {
        var lines: [String] = []
        let vars = graph.globalVariables
        let width = max(4, vars.map(\.name.count).max() ?? 0)
        // Shapes are padded to the longest one, never cut (`padding(toLength:)` would cut a longer one).
        let shapes = vars.map { formatShape($0.shape) }
        let shapeWidth = max(11, shapes.map(\.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        lines.append(pad("name", width) + "  " + pad("shape", shapeWidth) + "  bytes")
        for (v, shape) in zip(vars, shapes) {
            lines.append(pad(v.name, width) + "  " + pad(shape, shapeWidth) + "  \(v.byteCount)")
        }
        let total = vars.map(\.byteCount).reduce(0, +)
        var summary = "\(vars.count) variables, \(vars.filter(\.trainable).count) trainable, \(total) bytes"
        let parts = vars.compactMap(\.sliceInfo)
        if !parts.isEmpty {
            summary += "; \(parts.count) of them parts of \(Set(parts.map(\.fullName)).count) partitioned variables"
        }
        lines.append(summary)
        for w in graph.warnings { lines.append(w.description) }
        text = lines.joined(separator: "\n")
    }
}
