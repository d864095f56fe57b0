import Tensors
import VariableScopes

/// A static, unrolled graph of ops in creation (hence topological) order, built once and run every step.
///
/// Like a TF1 graph, it is defined first and executed later: `forward()` runs every op in order,
/// `backward(from:)` runs their gradients in reverse. Nothing is allocated per step.
public final class Tape {
    public private(set) var nodes: [Node] = []
    private var variableNodes: [ObjectIdentifier: Node] = [:]
    /// The partitioned variables this graph reads whole (their parts are what is trained).
    private var partitionedReads: [Variable] = []

    public init() {}

    /// A fed input (placeholder) of `shape`.
    public func placeholder(_ shape: [Int]) -> Node {
        let n = Node(shape: shape, op: nil, inputs: [])
        nodes.append(n)
        return n
    }

    /// A constant of `shape` filled with `value`.
    public func constant(_ value: Float, shape: [Int]) -> Node {
        let n = placeholder(shape)
        n.value.update(repeating: value)
        return n
    }

    /// The node that reads `variable`: one per variable, however many times it is used.
    public func read(_ variable: Variable) -> Node {
        if let n = variableNodes[ObjectIdentifier(variable)] { return n }
        let n = Node(variable: variable)
        variableNodes[ObjectIdentifier(variable)] = n
        if variable.isPartitioned { partitionedReads.append(variable) }
        nodes.append(n)
        return n
    }

    /// The variables this graph reads, in first-use order.
    public var variables: [Variable] { nodes.compactMap(\.variable) }

    func apply(_ op: Op, _ inputs: [Node], shape: [Int]) -> Node {
        let n = Node(shape: shape, op: op, inputs: inputs)
        nodes.append(n)
        return n
    }

    /// Runs every op in order.
    public func forward() {
        // A partitioned variable is read whole: parts along an inner axis are copied in first (views need nothing).
        for v in partitionedReads { v.gatherParts() }
        for n in nodes {
            if let op = n.op { op.forward(n.inputs, n) }
        }
    }

    /// Back-propagates from a scalar `loss`: zeroes every gradient (the variables' included), seeds
    /// d(loss)/d(loss) = 1 and runs each op's gradient in reverse order.
    public func backward(from loss: Node) {
        for n in nodes { n.grad.update(repeating: 0) }
        loss.grad.update(repeating: 1)
        for n in nodes.reversed() {
            if let op = n.op { op.backward(n.inputs, n) }
        }
        for v in partitionedReads { v.scatterGradient() }
    }

}
