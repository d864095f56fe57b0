import Tensors

/// Splits a variable into parts along one axis, as TensorFlow's partitioners do.
///
/// A partitioner sees the variable's full shape and the size of one element in bytes, and returns the
/// number of parts along each axis (TF1's `partitioner(shape=..., dtype=...)`). The three of
/// `tf.compat.v1` are here with TensorFlow 2.21's arithmetic (`python/ops/partitioned_variables.py`),
/// checked against what TensorFlow returns (`Tests/Fixtures/partitions.json`). The variable store then
/// checks the result as TensorFlow's `_call_partitioner` does: one count per axis, none below 1, at most
/// one above 1.
///
/// Axes follow Python's indexing, as in TensorFlow: `-1` is the last axis.
public struct Partitioner: Sendable {
    /// Given the full shape and the element size in bytes, the number of parts along each axis.
    public let partitions: @Sendable (_ shape: [Int], _ elementSize: Int) throws(PartitionError) -> [Int]

    /// A partitioner of your own; the variable store checks what it returns.
    public init(_ partitions: @escaping @Sendable (_ shape: [Int], _ elementSize: Int) throws(PartitionError) -> [Int])
    {
        self.partitions = partitions
    }

    /// `tf.compat.v1.fixed_size_partitioner(num_shards, axis)`: `min(shards, shape[axis])` parts along `axis`.
    ///
    /// TensorFlow does not clamp below: a zero-sized axis (or `shards < 1`) gives 0 parts, which the
    /// variable store refuses (`VariableScopeError.invalidPartitions`).
    /// - Throws: `PartitionError.axisOutOfRange` when `axis` is not an axis of the shape.
    public static func fixedSize(_ shards: Int, axis: Int = 0) -> Partitioner {
        Partitioner { shape, _ throws(PartitionError) in
            let a = try normalized(axis, shape)
            var p = [Int](repeating: 1, count: shape.count)
            p[a] = min(shards, shape[a])
            return p
        }
    }

    /// `tf.compat.v1.min_max_variable_partitioner(max_partitions, axis, min_slice_size)`: as many parts as
    /// keep each at least `minSliceBytes` bytes, at most `maxPartitions` and at most one per slice of `axis`:
    /// `max(1, min(shape[axis], maxPartitions, ceil(elements * elementSize / minSliceBytes)))`.
    ///
    /// - Throws: `PartitionError.axisOutOfRange`; `.invalidArgument` for `minSliceBytes == 0` (TensorFlow
    ///   divides by it: `ZeroDivisionError`).
    public static func minMax(maxPartitions: Int = 1, minSliceBytes: Int = 256 << 10, axis: Int = 0) -> Partitioner {
        Partitioner { shape, elementSize throws(PartitionError) in
            let a = try normalized(axis, shape)
            guard minSliceBytes != 0 else {
                throw .invalidArgument(
                    "min_max_variable_partitioner's min slice size must not be 0 (TensorFlow divides by it)")
            }
            // TensorFlow: total_size_bytes / min_slice_size in float64, then ceil.
            let parts = (elements(shape) * Double(elementSize) / Double(minSliceBytes)).rounded(.up)
            let limit = min(shape[a], maxPartitions)
            var p = [Int](repeating: 1, count: shape.count)
            p[a] = max(1, clampedMin(limit, parts))
            return p
        }
    }

    /// `tf.compat.v1.variable_axis_size_partitioner(max_shard_bytes, axis, max_shards=...)`: parts of as
    /// many whole slices of `axis` as fit in `maxShardBytes` (at least one slice each):
    /// `slicesPerShard = max(1, floor(maxShardBytes / (elements / shape[axis] * elementSize)))`,
    /// `ceil(shape[axis] / slicesPerShard)` parts, at most `maxShards` if that is given and not 0.
    ///
    /// - Throws: `PartitionError.axisOutOfRange`; `.emptySlice` when a slice of `axis` has no bytes or
    ///   the axis has no slices (TensorFlow divides by zero); `.invalidArgument` for `maxShardBytes < 1`
    ///   or `maxShards < 0` (TensorFlow's `ValueError`s).
    public static func variableAxisSize(maxShardBytes: Int, axis: Int = 0, maxShards: Int? = nil) -> Partitioner {
        Partitioner { shape, elementSize throws(PartitionError) in
            guard maxShardBytes >= 1 else {
                throw .invalidArgument(
                    "variable_axis_size_partitioner's max shard bytes must be positive, not \(maxShardBytes)")
            }
            if let maxShards, maxShards < 0 {
                throw .invalidArgument("variable_axis_size_partitioner's max shards must be positive, not \(maxShards)")
            }
            let a = try normalized(axis, shape)
            let dim = shape[a]
            guard dim != 0 else { throw .emptySlice(shape: shape, axis: a) }
            // TensorFlow, in float64: bytes_per_slice = num_elements / shape[axis] * element_size.
            let bytesPerSlice = elements(shape) / Double(dim) * Double(elementSize)
            guard bytesPerSlice != 0 else { throw .emptySlice(shape: shape, axis: a) }
            let slicesPerShard = max(1, (Double(maxShardBytes) / bytesPerSlice).rounded(.down))
            var shards = clampedMin(dim, (Double(dim) / slicesPerShard).rounded(.up))
            // `if max_shards:` in TensorFlow: 0 means no limit.
            if let maxShards, maxShards > 0 { shards = min(maxShards, shards) }
            var p = [Int](repeating: 1, count: shape.count)
            p[a] = shards
            return p
        }
    }

    /// The sizes of `parts` slices of a dimension of `size`: the first `size % parts` get one extra
    /// (TensorFlow's `_iter_slices`).
    public static func sliceSizes(_ size: Int, parts: Int) -> [Int] {
        (0..<parts).map { size / parts + ($0 < size % parts ? 1 : 0) }
    }

    /// `axis` as an index into `shape`, negative ones counted from the end as Python does.
    static func normalized(_ axis: Int, _ shape: [Int]) throws(PartitionError) -> Int {
        let a = axis < 0 ? axis + shape.count : axis
        guard a >= 0, a < shape.count else { throw .axisOutOfRange(axis: axis, shape: shape) }
        return a
    }

    /// The number of elements as TensorFlow's float arithmetic sees it (exact below 2^53, never traps).
    static func elements(_ shape: [Int]) -> Double { shape.reduce(1.0) { $0 * Double($1) } }

    /// `min(limit, value)` for a float `value`, as an `Int` without trapping on huge or infinite values.
    static func clampedMin(_ limit: Int, _ value: Double) -> Int {
        if value.isNaN || value >= Double(limit) { return limit }
        if value <= -9.0e18 { return Int.min }
        return min(limit, Int(value))
    }
}

/// Why a partitioner cannot split a variable of a given shape. TensorFlow raises for each of these.
public enum PartitionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The axis is not an axis of the shape (TensorFlow: `Cannot partition variable along axis 1 when
    /// shape is only (128,)`, or an `IndexError`).
    case axisOutOfRange(axis: Int, shape: [Int])
    /// A size partitioner found no bytes to measure along the axis (TensorFlow: `ZeroDivisionError`).
    case emptySlice(shape: [Int], axis: Int)
    /// An argument TensorFlow refuses or cannot compute with.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .axisOutOfRange(let axis, let shape):
            return "cannot partition along axis \(axis) when the shape is only \(formatShape(shape))"
        case .emptySlice(let shape, let axis):
            return
                "cannot size parts along axis \(axis) of shape \(formatShape(shape)): it holds no elements; give it a fixed_size partitioner or none"
        case .invalidArgument(let message):
            return message
        }
    }
}
