import Tensors

/// A variable of a graph: a name, a shape, and one value buffer and one gradient buffer.
///
/// Every op that reads the variable adds its contribution into `gradient`, so a variable shared by
/// `getVariable` across the decoder's timesteps receives the sum over all of them in one place.
/// A partitioned variable (`parts` not empty) has no storage of its own: its parts hold the values.
public final class Variable: CustomStringConvertible {
    /// The variable's name as TensorFlow would print it, without `:0`.
    public let name: String
    public let shape: [Int]
    public let dtype: DType
    public let trainable: Bool
    /// How the variable was initialised; the parameter server recreates it from this and the graph seed.
    public let initializer: Initializer
    /// Whether `getVariable` made it (shareable by name) rather than `variable(...)` (never shared).
    public let isShareable: Bool
    /// The parts of a partitioned variable, in order along `partitionAxis`.
    public let parts: [Variable]
    public let partitionAxis: Int
    /// The shape whose fans set a Glorot limit: the whole variable's, for a part of a partitioned one.
    public let fanShape: [Int]
    /// For a part of a partitioned variable: where it sits in the whole (TensorFlow's `SaveSliceInfo`);
    /// nil for any other variable.
    public let sliceInfo: SliceInfo?
    /// The current value, row-major float32.
    public let value: UnsafeMutableBufferPointer<Float>
    /// The accumulated d(loss)/d(value) of the current step.
    public let gradient: UnsafeMutableBufferPointer<Float>

    init(
        name: String, shape: [Int], dtype: DType, trainable: Bool, initializer: Initializer,
        isShareable: Bool, initialValues: [Float], fanShape: [Int]? = nil, sliceInfo: SliceInfo? = nil
    ) {
        self.name = name
        self.fanShape = fanShape ?? shape
        self.sliceInfo = sliceInfo
        self.shape = shape
        self.dtype = dtype
        self.trainable = trainable
        self.initializer = initializer
        self.isShareable = isShareable
        self.parts = []
        self.partitionAxis = 0
        value = .allocate(capacity: initialValues.count)
        _ = value.initialize(from: initialValues)
        gradient = .allocate(capacity: initialValues.count)
        gradient.initialize(repeating: 0)
    }

    init(
        partitioned name: String, shape: [Int], dtype: DType, trainable: Bool, initializer: Initializer,
        parts: [Variable], axis: Int
    ) {
        self.name = name
        self.fanShape = shape
        self.sliceInfo = nil
        self.shape = shape
        self.dtype = dtype
        self.trainable = trainable
        self.initializer = initializer
        self.isShareable = true
        self.parts = parts
        self.partitionAxis = axis
        value = .allocate(capacity: 0)
        gradient = .allocate(capacity: 0)
    }

    deinit {
        value.deallocate()
        gradient.deallocate()
    }

    /// Elements in the value.
    public var count: Int { value.count }
    /// Bytes of the value in its declared dtype.
    public var byteCount: Int { elementCount(shape) * dtype.size }
    public var isPartitioned: Bool { !parts.isEmpty }

    /// For a partitioned variable, each part's place in it, in part order (empty otherwise).
    public var partSlices: [SliceInfo] { parts.compactMap(\.sliceInfo) }

    /// The value as a `Tensor` copy.
    public var tensor: Tensor { Tensor(shape: shape, scalars: Array(value)) }

    /// Overwrites the value.
    /// - Precondition: `scalars.count == count`.
    public func assign(_ scalars: [Float]) {
        precondition(
            scalars.count == count, "assigning \(scalars.count) values to \(name) of shape \(formatShape(shape))")
        _ = value.update(fromContentsOf: scalars)
    }

    /// Sets the gradient buffer to zero before a step.
    public func zeroGradient() { gradient.update(repeating: 0) }

    public var description: String { "\(name) \(formatShape(shape)) \(dtype.rawValue)" }
}

/// Where a part of a partitioned variable sits in the whole: TensorFlow's `Variable.SaveSliceInfo`,
/// which its checkpoints store so that any reader can put the whole variable back together.
public struct SliceInfo: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The whole variable's name, e.g. `lstm_cell_decoder/rnn/lstm_cell/kernel`.
    public let fullName: String
    /// The whole variable's shape.
    public let fullShape: [Int]
    /// The part's first index along every axis (TensorFlow's `var_offset`).
    public let offset: [Int]
    /// The part's own shape (TensorFlow's `var_shape`).
    public let shape: [Int]

    public init(fullName: String, fullShape: [Int], offset: [Int], shape: [Int]) {
        self.fullName = fullName
        self.fullShape = fullShape
        self.offset = offset
        self.shape = shape
    }

    /// TensorFlow's slice spec as its checkpoints write it: the full shape, then `offset,length` per
    /// axis joined by `:` (`"33 128 17,16:0,128"`).
    public var spec: String {
        fullShape.map(String.init).joined(separator: " ") + " "
            + zip(offset, shape).map { "\($0),\($1)" }.joined(separator: ":")
    }

    public var description: String { "\(fullName) [\(spec)]" }
}
