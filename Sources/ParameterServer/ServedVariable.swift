import Optimizers
import Wire

/// A variable this server owns: its value, its optimizer slots, and who registered it first.
///
/// Updates are staged: computed into spare buffers, checked, and swapped in only when every value and
/// slot is finite, so a hostile or diverging gradient can never poison the state.
final class ServedVariable {
    let name: String
    let shape: [Int]
    let dtype: String
    var value: [Float]
    var first: [Float]
    var second: [Float]
    /// Updates applied (Adam's t).
    var step: Int
    /// The worker that created it, for conflict messages.
    let registeredBy: String
    private var stagedValue: [Float] = []
    private var stagedFirst: [Float] = []
    private var stagedSecond: [Float] = []

    init(name: String, shape: [Int], dtype: String, value: [Float], registeredBy: String) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.value = value
        first = [Float](repeating: 0, count: value.count)
        second = [Float](repeating: 0, count: value.count)
        step = 0
        self.registeredBy = registeredBy
    }

    init(restoring saved: SavedVariable) {
        name = saved.name
        shape = saved.shape
        dtype = saved.dtype
        value = saved.value
        first = saved.first
        second = saved.second
        step = saved.step
        registeredBy = saved.registeredBy
    }

    /// Bytes held: the value and two slots.
    var bytes: Int { value.count * 12 }

    /// Computes the update from `gradient` into the staging buffers; returns whether all of it is finite.
    func stage(_ optimizer: OptimizerConfig, gradient: UnsafeBufferPointer<Float>) -> Bool {
        stagedValue = value
        stagedFirst = first
        stagedSecond = second
        let t = step + 1
        return stagedValue.withUnsafeMutableBufferPointer { v in
            stagedFirst.withUnsafeMutableBufferPointer { m in
                stagedSecond.withUnsafeMutableBufferPointer { s in
                    OptimizerSlots.update(optimizer, step: t, value: v, first: m, second: s, gradient: gradient)
                    return allFinite(UnsafeBufferPointer(v)) && allFinite(UnsafeBufferPointer(m))
                        && allFinite(UnsafeBufferPointer(s))
                }
            }
        }
    }

    /// Makes the staged update the variable's state.
    func commit() {
        swap(&value, &stagedValue)
        swap(&first, &stagedFirst)
        swap(&second, &stagedSecond)
        step += 1
    }

    var saved: SavedVariable {
        SavedVariable(
            name: name, shape: shape, dtype: dtype, value: value, first: first, second: second, step: step,
            registeredBy: registeredBy)
    }
}

func allFinite(_ b: UnsafeBufferPointer<Float>) -> Bool {
    for x in b where !x.isFinite { return false }
    return true
}
