import Tensors
import VariableScopes

/// A value in the unrolled graph: a shape, a preallocated value buffer and a gradient buffer.
///
/// Buffers are allocated once when the graph is built and reused every step. A variable's node
/// aliases the variable's own buffers, so every op that reads a shared variable adds its gradient
/// into that variable's single gradient buffer.
public final class Node {
    public let shape: [Int]
    public let value: UnsafeMutableBufferPointer<Float>
    public let grad: UnsafeMutableBufferPointer<Float>
    /// The op that computes this node, nil for feeds, constants and variables.
    let op: Op?
    let inputs: [Node]
    /// The variable whose buffers this node aliases, if any.
    public let variable: Variable?
    private let ownsBuffers: Bool

    init(shape: [Int], op: Op?, inputs: [Node]) {
        let n = elementCount(shape)
        self.shape = shape
        self.op = op
        self.inputs = inputs
        self.variable = nil
        value = .allocate(capacity: n)
        value.initialize(repeating: 0)
        grad = .allocate(capacity: n)
        grad.initialize(repeating: 0)
        ownsBuffers = true
    }

    init(variable: Variable) {
        shape = variable.shape
        op = nil
        inputs = []
        self.variable = variable
        value = variable.value
        grad = variable.gradient
        ownsBuffers = false
    }

    /// A view: `shape` elements of `parent`'s value and gradient from `offset` on, aliased, not copied.
    /// Whatever adds into the view's gradient adds into the parent's, which the parent's op reads in its
    /// backward pass (it runs after every consumer of the view, being created before them).
    init(viewOf parent: Node, offset: Int, shape: [Int]) {
        let n = elementCount(shape)
        precondition(offset >= 0 && offset + n <= parent.count, "view of \(n) at \(offset) in \(parent.count)")
        self.shape = shape
        op = nil
        inputs = [parent]
        variable = nil
        value = UnsafeMutableBufferPointer(start: parent.value.baseAddress! + offset, count: n)
        grad = UnsafeMutableBufferPointer(start: parent.grad.baseAddress! + offset, count: n)
        ownsBuffers = false
    }

    deinit {
        if ownsBuffers {
            value.deallocate()
            grad.deallocate()
        }
    }

    public var count: Int { value.count }
    /// Rows and columns of a 2-D node.
    var rows: Int { shape[0] }
    var cols: Int { shape.count > 1 ? shape[1] : 1 }

    /// The current value as a `Tensor` copy.
    public var tensor: Tensor { Tensor(shape: shape, scalars: Array(value)) }
    /// The current gradient as a `Tensor` copy.
    public var gradient: Tensor { Tensor(shape: shape, scalars: Array(grad)) }

    /// Overwrites the value of a feed (or any leaf).
    public func feed(_ scalars: [Float]) {
        precondition(scalars.count == count, "feeding \(scalars.count) values to a node of shape \(formatShape(shape))")
        _ = value.update(fromContentsOf: scalars)
    }
}

/// An operation's kernels: forward fills `out.value` from the inputs; backward adds
/// d(loss)/d(input) into each input's `grad`, given `out.grad`. Backward always accumulates.
protocol Op: AnyObject {
    func forward(_ inputs: [Node], _ out: Node)
    func backward(_ inputs: [Node], _ out: Node)
}
