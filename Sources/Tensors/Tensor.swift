/// A dense, row-major float32 tensor value: a shape and its elements.
///
/// Used for initial values, feeds and fetched results; the training graph itself works on
/// preallocated buffers and never allocates per op.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var scalars: [Float]

    /// A tensor of `shape` holding `scalars`.
    /// - Precondition: `scalars.count` equals the shape's element count.
    public init(shape: [Int], scalars: [Float]) {
        precondition(
            scalars.count == elementCount(shape),
            "tensor of shape \(formatShape(shape)) needs \(elementCount(shape)) values, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: elementCount(shape)))
    }

    /// A scalar.
    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    public var count: Int { scalars.count }
}
