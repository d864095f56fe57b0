import Tensors
import VariableScopes

/// The seed's `print` loop as a report: each variable's name, shape and bytes, then the
/// duplicate-variable warnings, so a user sees at once whether the decoder shares its weights.
public struct VariableReport {
    public let text: String

    public init(_ graph: Graph) {
        var lines: [String] = []
        let vars = graph.globalVariables
        let width = max(4, vars.map(\.name.count).max() ?? 0)
        // Shapes are padded to the longest one, never cut (`padding` truncates to its length).
        let shapeWidth = max(11, vars.map { formatShape($0.shape).count }.max() ?? 0)
        lines.append(
            "name".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + "shape".padding(toLength: shapeWidth, withPad: " ", startingAt: 0) + "  bytes")
        for v in vars {
            let shape = formatShape(v.shape).padding(toLength: shapeWidth, withPad: " ", startingAt: 0)
            lines.append(v.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(shape)  \(v.byteCount)")
        }
        let total = vars.map(\.byteCount).reduce(0, +)
        lines.append("\(vars.count) variables, \(vars.filter(\.trainable).count) trainable, \(total) bytes")
        for w in graph.warnings { lines.append(w.description) }
        text = lines.joined(separator: "\n")
    }
}
