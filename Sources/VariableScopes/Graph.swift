import Tensors

/// A model's graph in the TF1 sense, as far as variables are concerned: the variable store that
/// `getVariable` shares through, the creation-ordered variable lists, the open variable and name
/// scopes, and the set of names already used for uniquifying.
///
/// One graph per model build. The rules are TensorFlow 1.x's (`tf.compat.v1`), read off TensorFlow
/// 2.21 by running it; see `spec/variable-scopes.md`.
public final class Graph {
    /// Seeds every initializer, together with each variable's name.
    public let seed: UInt64

    /// Shareable variables by full name (TF's `_VariableStore._vars`).
    var store: [String: Variable] = [:]
    /// Partitioned variables by full name (`_partitioned_vars`).
    var partitionedStore: [String: Variable] = [:]
    /// Every variable in creation order (`tf.global_variables()`); partitions are listed part by part.
    public private(set) var globalVariables: [Variable] = []
    /// Names used by name scopes and variables, lowercased, with their use counts (`Graph._names_in_use`).
    var namesInUse: [String: Int] = [:]
    /// The current name scope without its trailing slash (`Graph._name_stack`).
    public internal(set) var nameStack: String = ""
    /// How many times each variable-scope name is open or was opened since its parent was
    /// (`_VariableScopeStore.variable_scopes_count`), for default-name uniquification.
    var scopeCounts: [String: Int] = [:]
    /// How many times each variable-scope name was ever entered, for the duplicate-variable diagnostic.
    var entryCounts: [String: Int] = [:]
    /// The open variable scopes, root first.
    var scopes: [VariableScope]
    /// Warnings about `variable(...)` calls that probably meant to share (see `VariableWarning`).
    public private(set) var warnings: [VariableWarning] = []

    /// A new, empty graph.
    /// - Parameter seed: the global seed; the same seed and names give the same initial values everywhere.
    public init(seed: UInt64 = 0) {
        self.seed = seed
        scopes = [
            VariableScope(
                name: "", reuse: .create, initializer: nil, partitioner: nil, dtype: .float32,
                originalNameScope: "", priorEntries: 0)
        ]
    }

    /// The innermost open variable scope (TF's `get_variable_scope()`).
    public var currentVariableScope: VariableScope { scopes[scopes.count - 1] }

    /// The trainable variables in creation order (`tf.trainable_variables()`).
    public var trainableVariables: [Variable] { globalVariables.filter(\.trainable) }

    /// A variable made by `getVariable`, by full name; nil if there is none.
    public func storedVariable(_ fullName: String) -> Variable? { store[fullName] ?? partitionedStore[fullName] }

    // MARK: - Names

    /// TensorFlow's `Graph.unique_name`: `name` under the current name scope, with `_1`, `_2`, ...
    /// appended if already used (case-insensitively), and marked as used.
    func uniqueName(_ name: String) -> String {
        let full = nameStack.isEmpty ? name : nameStack + "/" + name
        let key = full.lowercased()
        var i = namesInUse[key, default: 0]
        namesInUse[key] = i + 1
        if i == 0 { return full }
        var candidate = "\(key)_\(i)"
        while namesInUse[candidate] != nil {
            i += 1
            candidate = "\(key)_\(i)"
        }
        namesInUse[candidate] = 1
        return "\(full)_\(i)"
    }

    /// Checks a name against TensorFlow's patterns: at the root `[A-Za-z0-9.][A-Za-z0-9_./>-]*`,
    /// inside a name scope `[A-Za-z0-9_./>-]*`.
    func validate(_ name: String) throws {
        let rest = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./>-\\")
        let first = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
        guard name.allSatisfy(rest.contains) else { throw VariableScopeError.invalidName(name) }
        if nameStack.isEmpty, let c = name.first, !first.contains(c) { throw VariableScopeError.invalidName(name) }
    }

    /// Opens a name scope the way `ops.name_scope(name)` does and returns the previous stack to restore.
    func pushNameScope(_ name: String) throws -> (previous: String, opened: String) {
        let previous = nameStack
        if name.isEmpty {
            nameStack = ""
            return (previous, "")
        }
        try validate(name)
        if name.hasSuffix("/") {
            nameStack = String(name.dropLast())
            return (previous, name)
        }
        nameStack = uniqueName(name)
        return (previous, nameStack + "/")
    }

    // MARK: - Name scopes

    /// Runs `body` inside a name scope (TF's `tf.name_scope`). Name scopes prefix `variable(...)` names,
    /// not `getVariable` names, and are uniquified: `ns`, then `ns_1`, ...
    ///
    /// - Parameter name: the scope name; `""` returns to the root, and a name ending in `/` re-enters
    ///   that absolute scope as is.
    /// - Returns: what `body` returns; `body` receives the scope's name with a trailing `/`.
    public func nameScope<R>(_ name: String, _ body: (String) throws -> R) throws -> R {
        let (previous, opened) = try pushNameScope(name)
        defer { nameStack = previous }
        return try body(opened)
    }

    // MARK: - Variable scopes

    /// Runs `body` inside variable scope `name` (TF's `tf.variable_scope(name, reuse=...)`).
    ///
    /// The variable-scope name is `parent/name` every time; the name scope it opens is uniquified
    /// (`name`, `name_1`, ...), so `variable(...)` inside a second entry lands under `name_1/`.
    /// - Parameters:
    ///   - reuse: `.inherit` takes the parent's mode, `.reuse` requires existing variables,
    ///     `.auto` shares or creates.
    ///   - initializer, partitioner, dtype: defaults for `getVariable` inside; unset ones are inherited.
    /// - Throws: `VariableScopeError.invalidName`, or whatever `body` throws (the scope is closed either way).
    @discardableResult
    public func variableScope<R>(
        _ name: String, reuse: Reuse = .inherit, initializer: Initializer? = nil,
        partitioner: Partitioner? = nil, dtype: DType? = nil, _ body: (VariableScope) throws -> R
    ) throws -> R {
        let parent = currentVariableScope
        let previousStack = nameStack
        var openedNameScope = ""
        if !name.isEmpty {
            openedNameScope = try pushNameScope(name).opened
        }
        defer { nameStack = previousStack }
        let fullName = parent.name.isEmpty ? name : parent.name + "/" + name
        let mode = Graph.resolve(reuse, inheriting: parent.reuse)
        let scope = open(
            fullName, mode: mode, initializer: initializer ?? parent.initializer,
            partitioner: partitioner ?? parent.partitioner, dtype: dtype ?? parent.dtype,
            nameScope: openedNameScope)
        defer { closeScope(fullName, restoring: nil) }
        return try body(scope)
    }

    /// `variableScope(_:reuse:)` with TF's boolean form, so `reuse: t > 0` reads as in TensorFlow:
    /// `true` is `.reuse`, `false` is `.inherit` (it cannot switch off a parent's reuse).
    @discardableResult
    public func variableScope<R>(
        _ name: String, reuse: Bool, initializer: Initializer? = nil, partitioner: Partitioner? = nil,
        dtype: DType? = nil, _ body: (VariableScope) throws -> R
    ) throws -> R {
        try variableScope(
            name, reuse: reuse ? .reuse : .inherit, initializer: initializer,
            partitioner: partitioner, dtype: dtype, body)
    }

    /// Re-enters a captured scope by object: its absolute name wherever you are now, its own reuse mode
    /// unless `reuse` says otherwise, and a fresh uniquified name scope named after its last component.
    @discardableResult
    public func variableScope<R>(
        _ scope: VariableScope, reuse: Reuse = .inherit, initializer: Initializer? = nil,
        partitioner: Partitioner? = nil, dtype: DType? = nil, _ body: (VariableScope) throws -> R
    ) throws -> R {
        let previousStack = nameStack
        let last = scope.name.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        var openedNameScope = scope.originalNameScope
        if !last.isEmpty {
            openedNameScope = try pushNameScope(last).opened
        }
        defer { nameStack = previousStack }
        let mode = Graph.resolve(reuse, inheriting: scope.reuse)
        let inner = open(
            scope.name, mode: mode, initializer: initializer ?? scope.initializer,
            partitioner: partitioner ?? scope.partitioner, dtype: dtype ?? scope.dtype,
            nameScope: openedNameScope)
        // TF restores the default-name counts as they were just after this entry.
        let restored = scopeCounts
        defer { closeScope(scope.name, restoring: restored) }
        return try body(inner)
    }

    /// `variableScope(_:reuse:)` by object with the boolean form of `reuse`.
    @discardableResult
    public func variableScope<R>(
        _ scope: VariableScope, reuse: Bool, _ body: (VariableScope) throws -> R
    ) throws -> R {
        try variableScope(scope, reuse: reuse ? .reuse : .inherit, body)
    }

    /// A scope with no name but a default one (TF's `variable_scope(None, default_name=...)`): the
    /// variable-scope name itself is uniquified among its siblings (`layer`, `layer_1`, ...).
    /// - Throws: `.reuseWithoutName` for any `reuse` other than `.inherit`, as TensorFlow refuses it.
    @discardableResult
    public func variableScope<R>(
        defaultName: String, reuse: Reuse = .inherit, initializer: Initializer? = nil,
        partitioner: Partitioner? = nil, dtype: DType? = nil, _ body: (VariableScope) throws -> R
    ) throws -> R {
        if reuse != .inherit { throw VariableScopeError.reuseWithoutName(defaultName: defaultName) }
        let parent = currentVariableScope
        let previousStack = nameStack
        let openedNameScope = try pushNameScope(defaultName).opened
        defer { nameStack = previousStack }
        let prefix = parent.name.isEmpty ? defaultName : parent.name + "/" + defaultName
        var unique = defaultName
        if scopeCounts[prefix, default: 0] > 0 {
            var i = 1
            while scopeCounts["\(prefix)_\(i)", default: 0] > 0 { i += 1 }
            unique = "\(defaultName)_\(i)"
        }
        let fullName = parent.name.isEmpty ? unique : parent.name + "/" + unique
        let scope = open(
            fullName, mode: parent.reuse, initializer: initializer ?? parent.initializer,
            partitioner: partitioner ?? parent.partitioner, dtype: dtype ?? parent.dtype,
            nameScope: openedNameScope)
        defer { closeScope(fullName, restoring: nil) }
        return try body(scope)
    }

    /// TF1's rule: a truthy child mode wins, otherwise the inherited one.
    static func resolve(_ reuse: Reuse, inheriting inherited: ReuseMode) -> ReuseMode {
        switch reuse {
        case .inherit: return inherited
        case .reuse: return .reuse
        case .auto: return .auto
        }
    }

    private func open(
        _ fullName: String, mode: ReuseMode, initializer: Initializer?, partitioner: Partitioner?,
        dtype: DType, nameScope: String
    ) -> VariableScope {
        scopeCounts[fullName, default: 0] += 1
        let prior = entryCounts[fullName, default: 0]
        entryCounts[fullName] = prior + 1
        let scope = VariableScope(
            name: fullName, reuse: mode, initializer: initializer, partitioner: partitioner,
            dtype: dtype, originalNameScope: nameScope, priorEntries: prior)
        scopes.append(scope)
        return scope
    }

    /// Closing a scope entered by name forgets its sub-scopes' default-name counts (TF's
    /// `close_variable_subscopes`); closing one entered by object restores the counts from its entry.
    private func closeScope(_ fullName: String, restoring: [String: Int]?) {
        scopes.removeLast()
        if let restoring {
            scopeCounts = restoring
        } else {
            let prefix = fullName + "/"
            for key in scopeCounts.keys where key.hasPrefix(prefix) {
                scopeCounts[key] = 0
            }
        }
    }

    // MARK: - Variables

    func register(_ v: Variable) {
        globalVariables.append(v)
    }

    func recordWarning(for v: Variable, baseName: String) {
        let scope = currentVariableScope
        guard !scope.name.isEmpty, scope.reuse != .create || scope.priorEntries > 0 else { return }
        let intended = scope.name + "/" + baseName
        if let i = warnings.firstIndex(where: { $0.intended == intended }) {
            warnings[i].created.append(v.name)
        } else {
            warnings.append(
                VariableWarning(
                    scope: scope.name, intended: intended, created: [v.name],
                    reusing: scope.reuse != .create, reentered: scope.priorEntries > 0))
        }
    }
}
