import Optimizers
import Wire

/// A variable this server owns: its value, its optimizer slots, and who registered it first.
final class ServedVariable {
    let spec: VariableSpec
    var value: [Float]
    let slots: OptimizerSlots
    /// The worker that created it, for conflict messages.
    let registeredBy: String

    init(spec: VariableSpec, value: [Float], registeredBy: String) {
        self.spec = spec
        self.value = value
        self.slots = OptimizerSlots(count: value.count)
        self.registeredBy = registeredBy
    }

    /// Applies one optimizer update with `gradient`.
    func apply(_ optimizer: OptimizerConfig, gradient: UnsafeBufferPointer<Float>) {
        value.withUnsafeMutableBufferPointer { slots.apply(optimizer, value: $0, gradient: gradient) }
    }
}
