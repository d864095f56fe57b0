import Tensors

extension Graph {
    /// Gets a variable by name, or creates it (TF's `tf.get_variable`).
    ///
    /// The full name is the current *variable* scope's name + `/` + `name`; name scopes are ignored.
    /// Under `.create` an existing name is an error, under `.reuse` a missing one is, and `.auto`
    /// shares or creates. Sharing checks shape, then dtype. With a partitioner (this call's, else the
    /// scope's) the variable is created as parts `name/part_0`, ... along one axis, the first parts
    /// taking the extra rows, and the returned variable lists them in `parts`; one part is still
    /// `part_0`. A scalar (`shape: []`) is never partitioned, as in TensorFlow.
    ///
    /// - Parameters:
    ///   - shape: required to create; when sharing, nil accepts any shape.
    ///   - dtype: defaults to the scope's dtype (float32 at the root).
    ///   - initializer: defaults to the scope's, else Glorot-uniform (zeros for integers).
    ///   - trainable: whether the variable joins `trainableVariables`.
    ///   - partitioner: overrides the scope's partitioner (nil keeps it, as TF's `partitioner=None`).
    /// - Throws: `VariableScopeError.alreadyExists`, `.doesNotExist`, `.shapeMismatch`, `.dtypeMismatch`,
    ///   `.shapeRequired`, or a partition error (`.partitionFailed`, `.invalidPartitions`,
    ///   `.partitionedEmpty`, `.partitionMismatch`, `.partitionedAlreadyExists`, `.partitionedConflict`).
    @discardableResult
    public func getVariable(
        _ name: String, shape: [Int]? = nil, dtype: DType? = nil, initializer: Initializer? = nil,
        trainable: Bool = true, partitioner: Partitioner? = nil
    ) throws -> Variable {
        let scope = currentVariableScope
        let fullName = scope.name.isEmpty ? name : scope.name + "/" + name
        let dtype = dtype ?? scope.dtype
        let initializer =
            initializer ?? scope.initializer ?? (dtype == .float32 || dtype == .float64 ? .glorotUniform : .zeros)
        if let partitioner = partitioner ?? scope.partitioner, shape != [] {
            return try getPartitioned(
                fullName, shape: shape, dtype: dtype, initializer: initializer,
                trainable: trainable, mode: scope.reuse, partitioner: partitioner)
        }
        if partitionedStore[fullName] != nil { throw VariableScopeError.partitionedConflict(name: fullName) }
        return try getSingle(
            fullName, shape: shape, dtype: dtype, initializer: initializer, trainable: trainable,
            mode: scope.reuse, fanShape: nil)
    }

    /// TensorFlow's checks when sharing: shape first (nil accepts any), then dtype.
    private func checkSharing(_ found: Variable, _ fullName: String, shape: [Int]?, dtype: DType) throws {
        if let shape, shape != found.shape {
            throw VariableScopeError.shapeMismatch(name: fullName, specified: shape, found: found.shape)
        }
        if dtype != found.dtype {
            throw VariableScopeError.dtypeMismatch(name: fullName, specified: dtype, found: found.dtype)
        }
    }

    /// Gets or creates one unpartitioned variable under the store's rules for `mode`.
    func getSingle(
        _ fullName: String, shape: [Int]?, dtype: DType, initializer: Initializer, trainable: Bool,
        mode: ReuseMode, fanShape: [Int]?, sliceInfo: SliceInfo? = nil, view: (storage: VariableStorage, offset: Int)? = nil
    ) throws -> Variable {
        if let found = store[fullName] {
            if mode == .create { throw VariableScopeError.alreadyExists(name: fullName) }
            try checkSharing(found, fullName, shape: shape, dtype: dtype)
            return found
        }
        if mode == .reuse { throw VariableScopeError.doesNotExist(name: fullName) }
        guard let shape else { throw VariableScopeError.shapeRequired(name: fullName) }
        // Variable names are made at the root name scope, where they are uniquified like any op name.
        let savedStack = nameStack
        nameStack = ""
        let opName = uniqueName(fullName)
        nameStack = savedStack
        let values = initializer.values(shape: shape, seed: seed, name: opName, fanShape: fanShape)
        let v = Variable(
            name: opName, shape: shape, dtype: dtype, trainable: trainable, initializer: initializer,
            isShareable: true, initialValues: values, fanShape: fanShape, sliceInfo: sliceInfo, view: view)
        store[fullName] = v
        register(v)
        return v
    }

    /// Calls the partitioner and checks its answer as TensorFlow's `_call_partitioner` does: one count
    /// per axis, none below 1, at most one above 1.
    private func partitions(_ fullName: String, shape: [Int], dtype: DType, partitioner: Partitioner) throws -> [Int] {
        let p: [Int]
        do { p = try partitioner.partitions(shape, dtype.size) } catch {
            throw VariableScopeError.partitionFailed(name: fullName, error)
        }
        if p.count != shape.count || p.contains(where: { $0 < 1 }) || p.filter({ $0 > 1 }).count > 1 {
            throw VariableScopeError.invalidPartitions(name: fullName, shape: shape, partitions: p)
        }
        return p
    }

    /// TensorFlow's `_get_partitioned_variable`: the parts are ordinary variables `name/part_<i>`, each
    /// with its slice of the whole (`SaveSliceInfo`); the whole is kept by name for reuse.
    private func getPartitioned(
        _ fullName: String, shape: [Int]?, dtype: DType, initializer: Initializer, trainable: Bool,
        mode: ReuseMode, partitioner: Partitioner
    ) throws -> Variable {
        if store[fullName] != nil { throw VariableScopeError.partitionedConflict(name: fullName) }
        if let found = partitionedStore[fullName] {
            if mode == .create { throw VariableScopeError.partitionedAlreadyExists(name: fullName) }
            try checkSharing(found, fullName, shape: shape, dtype: dtype)
            let specified = try partitions(fullName, shape: found.shape, dtype: dtype, partitioner: partitioner)
            var existing = [Int](repeating: 1, count: found.shape.count)
            if !existing.isEmpty { existing[found.partitionAxis] = found.parts.count }
            if specified != existing {
                throw VariableScopeError.partitionMismatch(name: fullName, specified: specified, found: existing)
            }
            return found
        }
        if mode == .reuse { throw VariableScopeError.doesNotExist(name: fullName) }
        guard let shape else { throw VariableScopeError.shapeRequired(name: fullName) }
        let counts = try partitions(fullName, shape: shape, dtype: dtype, partitioner: partitioner)
        // TensorFlow's `_PartitionInfo` wants every offset below its dimension: no zero-sized axis.
        if shape.contains(0) { throw VariableScopeError.partitionedEmpty(name: fullName, shape: shape) }
        // No axis above 1: one part, which TensorFlow still names part_0 (along axis 0).
        let axis = counts.firstIndex(where: { $0 > 1 }) ?? 0
        var parts: [Variable] = []
        var offset = [Int](repeating: 0, count: shape.count)
        // Parts along an axis with only 1s before it lie back to back in the whole's row-major buffer: they
        // are made as views of it, so the model reads the whole and the parts are trained with no copy.
        let storage = shape.prefix(axis).allSatisfy { $0 == 1 } ? VariableStorage(count: elementCount(shape)) : nil
        var flat = 0
        for (i, size) in Partitioner.sliceSizes(shape[axis], parts: counts[axis]).enumerated() {
            var partShape = shape
            partShape[axis] = size
            let slice = SliceInfo(fullName: fullName, fullShape: shape, offset: offset, shape: partShape)
            parts.append(
                try getSingle(
                    "\(fullName)/part_\(i)", shape: partShape, dtype: dtype, initializer: initializer,
                    trainable: trainable, mode: mode, fanShape: shape, sliceInfo: slice, view: storage.map { ($0, flat) }))
            offset[axis] += size
            flat += elementCount(partShape)
        }
        let whole = Variable(
            partitioned: fullName, shape: shape, dtype: dtype, trainable: trainable,
            initializer: initializer, parts: parts, axis: axis, storage: storage)
        partitionedStore[fullName] = whole
        return whole
    }

    /// Creates a new variable that is never shared (TF's `tf.Variable`).
    ///
    /// Its name is the current *name* scope + `name`, uniquified (`foo/x`, `foo/x_1`, ...). Inside a
    /// scope that reuses or was entered before, this is almost always the seed's bug (a second weight
    /// set where one was meant), so the graph records a `VariableWarning` naming the variable it
    /// probably meant to share.
    /// - Parameters:
    ///   - initialValue: the value; its shape is the variable's shape.
    ///   - name: the base name, `Variable` by default.
    /// - Throws: `VariableScopeError.invalidName`.
    @discardableResult
    public func variable(
        initialValue: Tensor, name: String? = nil, dtype: DType = .float32, trainable: Bool = true
    ) throws -> Variable {
        let base = name ?? "Variable"
        try validate(base)
        let full = uniqueName(base)
        let v = Variable(
            name: full, shape: initialValue.shape, dtype: dtype, trainable: trainable,
            initializer: .tensor(initialValue), isShareable: false, initialValues: initialValue.scalars)
        register(v)
        recordWarning(for: v, baseName: base)
        return v
    }

    /// `variable(initialValue:)` with the value drawn from `initializer` (TF's
    /// `tf.Variable(tf.random_normal(shape, stddev=0.1))`), seeded by the graph seed and the new name.
    @discardableResult
    public func variable(
        shape: [Int], initializer: Initializer, name: String? = nil, dtype: DType = .float32, trainable: Bool = true
    ) throws -> Variable {
        let base = name ?? "Variable"
        try validate(base)
        let full = uniqueName(base)
        let values = initializer.values(shape: shape, seed: seed, name: full)
        let v = Variable(
            name: full, shape: shape, dtype: dtype, trainable: trainable, initializer: initializer,
            isShareable: false, initialValues: values)
        register(v)
        recordWarning(for: v, baseName: base)
        return v
    }
}
