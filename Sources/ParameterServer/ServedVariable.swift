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
    /// For a part of a partitioned variable: where it lies in the whole (for checkpoints).
    let slice: SliceSpec?
    private var stagedValue: [Float] = []
    private var stagedFirst: [Float] = []
    private var stagedSecond: [Float] = []

    init(name: String, shape: [Int], dtype: String, value: [Float], registeredBy: String, slice: SliceSpec? = nil) {
        self.slice = slice
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
        slice = saved.slice
    }

    /// Bytes held: the value and two slots.
    var bytes: Int { value.count * 12 }

    /// Computes the update from `gradient` × `scale` into the staging buffers, in one pass that reads the
    /// state once and writes the new state beside it (no copies); returns whether all of it is finite.
    func stage(_ optimizer: OptimizerConfig, gradient: UnsafeBufferPointer<Float>, scale: Float = 1) -> Bool {
        let n = value.count
        // Allocated once; afterwards they are the buffers the last commit swapped out. One still shared with a
        // reply in flight is copied by copy-on-write before it is written, so the reply stays intact.
        if stagedValue.count != n { stagedValue = [Float](repeating: 0, count: n) }
        if optimizer.kind != .sgd, stagedFirst.count != n { stagedFirst = [Float](repeating: 0, count: n) }
        if optimizer.kind == .adam, stagedSecond.count != n { stagedSecond = [Float](repeating: 0, count: n) }
        return value.withUnsafeBufferPointer { v in
            first.withUnsafeBufferPointer { m in
                second.withUnsafeBufferPointer { s in
                    stagedValue.withUnsafeMutableBufferPointer { vOut in
                        stagedFirst.withUnsafeMutableBufferPointer { mOut in
                            stagedSecond.withUnsafeMutableBufferPointer { sOut in
                                OptimizerSlots.update(
                                    optimizer, step: step + 1, value: v, first: m, second: s, gradient: gradient,
                                    scale: scale, valueOut: vOut, firstOut: mOut, secondOut: sOut)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Makes the staged update the variable's state: swaps in what `stage` wrote under `optimizer`.
    func commit(_ optimizer: OptimizerConfig) {
        swap(&value, &stagedValue)
        if optimizer.kind != .sgd { swap(&first, &stagedFirst) }
        if optimizer.kind == .adam { swap(&second, &stagedSecond) }
        step += 1
    }

    var saved: SavedVariable {
        SavedVariable(
            name: name, shape: shape, dtype: dtype, value: value, first: first, second: second, step: step,
            registeredBy: registeredBy, slice: slice)
    }
}

func allFinite(_ b: UnsafeBufferPointer<Float>) -> Bool { OptimizerSlots.allFinite(b) }
