import Tensors

/// The value and gradient buffers of a variable, or of a partitioned variable and all its parts: parts
/// that are contiguous in the whole are views of it, and each keeps the storage alive.
final class VariableStorage {
    let value: UnsafeMutableBufferPointer<Float>
    let gradient: UnsafeMutableBufferPointer<Float>

    init(count: Int) {
        value = .allocate(capacity: count)
        value.initialize(repeating: 0)
        gradient = .allocate(capacity: count)
        gradient.initialize(repeating: 0)
    }

    deinit {
        value.deallocate()
        gradient.deallocate()
    }
}

/// A variable of a graph: a name, a shape, and one value buffer and one gradient buffer.
///
/// Every op that reads the variable adds its contribution into `gradient`, so a variable shared by
/// `getVariable` across the decoder's timesteps receives the sum over all of them in one place.
///
/// A partitioned variable (`parts` not empty) holds the whole tensor, which the model reads, and its
/// parts are the variables that are trained, saved and placed on servers. Parts along the first axis (or
/// any axis with only 1s before it) are contiguous slices of the whole in row-major order, so they are
/// views of its buffers: what a part is assigned the whole holds, and the whole's gradient is the parts'
/// without a copy. Parts along another axis have buffers of their own, and `gatherParts()` /
/// `scatterGradient()` copy between them and the whole (the tape does it around each forward and backward).
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
    /// The current value, row-major float32. (Constants: the hot loops read them without exclusivity checks.)
    public let value: UnsafeMutableBufferPointer<Float>
    /// The accumulated d(loss)/d(value) of the current step.
    public let gradient: UnsafeMutableBufferPointer<Float>
    /// Keeps the buffers alive: this variable's own, or its whole's for a part that is a view.
    let storage: VariableStorage
    /// For a partitioned variable: whether its parts are views of its buffers (no copies needed).
    public let partsAreViews: Bool

    init(
        name: String, shape: [Int], dtype: DType, trainable: Bool, initializer: Initializer,
        isShareable: Bool, initialValues: [Float], fanShape: [Int]? = nil, sliceInfo: SliceInfo? = nil,
        view: (storage: VariableStorage, offset: Int)? = nil
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
        partsAreViews = false
        let n = initialValues.count
        if let view {
            // A part of a partitioned variable: its slice of the whole's buffers.
            storage = view.storage
            value = UnsafeMutableBufferPointer(rebasing: view.storage.value[view.offset..<view.offset + n])
            gradient = UnsafeMutableBufferPointer(rebasing: view.storage.gradient[view.offset..<view.offset + n])
        } else {
            storage = VariableStorage(count: n)
            value = storage.value
            gradient = storage.gradient
        }
        _ = value.update(fromContentsOf: initialValues)
    }

    init(
        partitioned name: String, shape: [Int], dtype: DType, trainable: Bool, initializer: Initializer,
        parts: [Variable], axis: Int, storage shared: VariableStorage? = nil
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
        // The parts are views of `shared` when the store made them so (back to back in row-major order);
        // otherwise this whole has buffers of its own and copies from and to its parts.
        let views = shared.map { s in parts.allSatisfy { $0.storage === s } } ?? false
        storage = views ? shared! : VariableStorage(count: elementCount(shape))
        value = storage.value
        gradient = storage.gradient
        partsAreViews = views
        gatherParts()
    }

    /// The parts' layout along the axis: (outer repeats, elements per row of each part, of the whole).
    private var stripes: (outer: Int, inner: Int) {
        let outer = shape.prefix(partitionAxis).reduce(1, *)
        let inner = shape.suffix(from: min(shape.count, partitionAxis + 1)).reduce(1, *)
        return (outer, inner)
    }

    /// Copies the parts' values into the whole (parts along an inner axis; views need nothing).
    public func gatherParts() {
        guard isPartitioned, !partsAreViews else { return }
        copyStripes(toWhole: true, value: true)
    }

    /// Copies the whole's gradient into the parts' (parts along an inner axis; views need nothing).
    public func scatterGradient() {
        guard isPartitioned, !partsAreViews else { return }
        copyStripes(toWhole: false, value: false)
    }

    private func copyStripes(toWhole: Bool, value useValue: Bool) {
        let (outer, inner) = stripes
        let row = shape[partitionAxis] * inner
        var start = 0
        for part in parts {
            let width = part.shape[partitionAxis] * inner
            let whole = useValue ? value : gradient
            let mine = useValue ? part.value : part.gradient
            for i in 0..<outer {
                let w = UnsafeMutableBufferPointer(rebasing: whole[(i * row + start)..<(i * row + start + width)])
                let p = UnsafeMutableBufferPointer(rebasing: mine[(i * width)..<(i * width + width)])
                if toWhole { _ = w.update(fromContentsOf: p) } else { _ = p.update(fromContentsOf: w) }
            }
            start += width
        }
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

    /// Overwrites the value (a partitioned variable's parts too).
    /// - Precondition: `scalars.count == count`.
    public func assign(_ scalars: [Float]) {
        precondition(
            scalars.count == count, "assigning \(scalars.count) values to \(name) of shape \(formatShape(shape))")
        _ = value.update(fromContentsOf: scalars)
        if isPartitioned, !partsAreViews { copyStripes(toWhole: false, value: true) }
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
