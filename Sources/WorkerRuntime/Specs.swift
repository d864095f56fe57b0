import VariableScopes
import Wire

extension VariableSpec {
    /// The spec of a variable of a graph: what a server needs to create it exactly as every worker would,
    /// and for a part, where it lies in its whole (which the servers record in their checkpoints).
    public init(_ v: Variable, seed: UInt64) {
        self.init(
            name: v.name, shape: v.shape, dtype: v.dtype.rawValue, initializer: InitializerSpec(v.initializer),
            seed: seed, fanShape: v.fanShape,
            slice: v.sliceInfo.map { SliceSpec(fullName: $0.fullName, fullShape: $0.fullShape, offset: $0.offset) })
    }
}

extension InitializerSpec {
    /// An initializer in its wire form.
    public init(_ i: Initializer) {
        switch i {
        case .zeros: self.init(kind: "zeros")
        case .ones: self.init(kind: "ones")
        case .constant(let v): self.init(kind: "constant", a: v)
        case .normal(let m, let s): self.init(kind: "normal", a: m, b: s)
        case .truncatedNormal(let m, let s): self.init(kind: "truncated_normal", a: m, b: s)
        case .glorotUniform: self.init(kind: "glorot_uniform")
        case .uniform(let l, let u): self.init(kind: "uniform", a: l, b: u)
        // The values travel as a tensor frame of the register (`RemoteExchange.registerRequest`).
        case .tensor: self.init(kind: InitializerSpec.tensorKind)
        }
    }
}
