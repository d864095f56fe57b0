/// Splits a variable into parts along one axis, as TensorFlow's partitioners do.
public struct Partitioner: Sendable {
    /// Given the full shape, the number of parts along each axis (all 1 but one).
    public let partitions: @Sendable ([Int]) -> [Int]

    public init(_ partitions: @escaping @Sendable ([Int]) -> [Int]) { self.partitions = partitions }

    /// `tf.fixed_size_partitioner`: `shards` parts along `axis`, at most one per row.
    public static func fixedSize(_ shards: Int, axis: Int = 0) -> Partitioner {
        Partitioner { shape in
            var p = [Int](repeating: 1, count: shape.count)
            if axis < shape.count { p[axis] = max(1, min(shards, shape[axis])) }
            return p
        }
    }

    /// The sizes of `parts` slices of a dimension of `size`: the first `size % parts` get one extra.
    public static func sliceSizes(_ size: Int, parts: Int) -> [Int] {
        (0..<parts).map { size / parts + ($0 < size % parts ? 1 : 0) }
    }
}
