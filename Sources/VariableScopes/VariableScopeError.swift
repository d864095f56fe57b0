import Tensors

/// The ways creating or sharing a variable can go wrong. Each is its own case, and each message names
/// the variable's full name and, where they differ, both shapes or both dtypes, as TensorFlow's do.
public enum VariableScopeError: Error, Equatable, CustomStringConvertible {
    /// `getVariable` outside reuse found the name taken.
    case alreadyExists(name: String)
    /// `getVariable` under `reuse: true` found no such variable.
    case doesNotExist(name: String)
    /// Sharing with a different shape.
    case shapeMismatch(name: String, specified: [Int], found: [Int])
    /// Sharing with a different dtype.
    case dtypeMismatch(name: String, specified: DType, found: DType)
    /// A new variable needs a shape.
    case shapeRequired(name: String)
    /// `reuse: true` with no scope name, only a default name.
    case reuseWithoutName(defaultName: String)
    /// A scope or variable name with characters TensorFlow refuses.
    case invalidName(String)
    /// A partitioned variable was created twice outside reuse.
    case partitionedAlreadyExists(name: String)
    /// Sharing a partitioned variable with other partitions.
    case partitionMismatch(name: String, specified: [Int], found: [Int])
    /// A name used both as a partitioned and as an ordinary variable.
    case partitionedConflict(name: String)
    /// The partitioner cannot split this variable (an axis it does not have, nothing to measure).
    case partitionFailed(name: String, PartitionError)
    /// The partitioner's answer is not one count per axis, each at least 1, at most one above 1
    /// (TensorFlow's `_call_partitioner` checks).
    case invalidPartitions(name: String, shape: [Int], partitions: [Int])
    /// A partitioned variable with a zero-sized dimension, which TensorFlow cannot slice.
    case partitionedEmpty(name: String, shape: [Int])

    public var description: String {
        switch self {
        case .alreadyExists(let n):
            return
                "Variable \(n) already exists, disallowed. Did you mean to set reuse: true or reuse: .auto in variableScope?"
        case .doesNotExist(let n):
            return
                "Variable \(n) does not exist, or was not created with getVariable(). Did you mean to set reuse: .auto in variableScope?"
        case .shapeMismatch(let n, let s, let f):
            return
                "Trying to share variable \(n), but specified shape \(formatShape(s)) and found shape \(formatShape(f))."
        case .dtypeMismatch(let n, let s, let f):
            return "Trying to share variable \(n), but specified dtype \(s.rawValue) and found dtype \(f.rawValue)."
        case .shapeRequired(let n):
            return
                "Shape of a new variable (\(n)) must be fully defined, but instead was <unknown>. Pass shape: to getVariable."
        case .reuseWithoutName(let d):
            return
                "reuse: true cannot be used without a scope name (default name '\(d)'). Name the scope or pass a scope object."
        case .invalidName(let n):
            return
                "'\(n)' is not a valid scope or variable name: use letters, digits and _ . - / >, not starting with _ - / >."
        case .partitionedAlreadyExists(let n):
            return
                "Partitioned variable with name \(n) already exists. Did you mean to set reuse: true or reuse: .auto in variableScope?"
        case .partitionMismatch(let n, let s, let f):
            return
                "Trying to reuse partitioned variable \(n), but specified partitions \(formatShape(s)) and found partitions \(formatShape(f))."
        case .partitionedConflict(let n):
            return "Variable \(n) is partitioned in one place and not in another: give the two different names."
        case .partitionFailed(let n, let e):
            return "Cannot partition variable \(n): \(e). Choose another partitioner or axis for it."
        case .partitionedEmpty(let n, let s):
            return
                "Cannot partition variable \(n) of shape \(formatShape(s)): a partitioned variable needs every dimension at least 1, as in TensorFlow. Create it outside the partitioned scope."
        case .invalidPartitions(let n, let s, let p):
            let list = "[" + p.map(String.init).joined(separator: ", ") + "]"
            if p.count != s.count {
                return
                    "Partitioner returned a partition list that does not match the rank of variable \(n): \(list) vs. \(formatShape(s))."
            }
            if p.contains(where: { $0 < 1 }) {
                return
                    "Partitioner returned zero partitions for some axes of variable \(n) of shape \(formatShape(s)): \(list). A zero-sized axis cannot be split in parts."
            }
            return
                "Can only slice a variable along one dimension: variable \(n), shape: \(formatShape(s)), partitioning: \(list)."
        }
    }
}
