import Exchange
import Foundation
import Optimizers
import VariableScopes
import Wire

/// Owns the memory a push's gradients travel in, and turns pulled values back into the variables.
///
/// - Packed (a server that agreed): one buffer per server, gradients copied (or narrowed) back to back, one
///   frame: a 233 KB copy costs less than the system calls and wake-ups of a frame per tensor.
/// - bfloat16 or prefetch, unpacked: one buffer per variable (narrowed, or copied because the next backward
///   pass writes the gradients while the push may still be on its way).
/// - Otherwise frames borrow the variables' gradient buffers: no copy.
///
/// Memory handed out is not written again until every reply of its round has arrived: the caller completes
/// a round before staging the next.
final class GradientStager {
    let dtype: WireDType
    private var perVariable: [ObjectIdentifier: UnsafeMutableRawBufferPointer] = [:]
    private var perServer: [Int: UnsafeMutableRawBufferPointer] = [:]

    init(dtype: WireDType) { self.dtype = dtype }

    deinit {
        for b in perVariable.values { b.deallocate() }
        for b in perServer.values { b.deallocate() }
    }

    /// The frames of a push of `vars`' gradients to server `server` (`TensorStream`).
    /// - Parameters:
    ///   - packed: the server takes one frame for several tensors, up to `maxFrameBytes`.
    ///   - maxFrameBytes: the server's frame limit: a larger gradient goes in chunks that fit.
    ///   - copy: the gradients must be copied even in float32 (prefetch).
    func frames(_ vars: [Variable], server: Int, packed: Bool, maxFrameBytes: Int, copy: Bool) -> [Frame] {
        let size = dtype.size
        let total = vars.reduce(0) { $0 + $1.count * size }
        if packed, vars.count > 1, total <= min(maxFrameBytes, TensorStream.packLimit) {
            let buffer = serverBuffer(server, bytes: total)
            var offset = 0
            for v in vars {
                put(v, into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + v.count * size]))
                offset += v.count * size
            }
            return [Frame(external: UnsafeRawBufferPointer(buffer), owner: nil)]
        }
        let tensors: [UnsafeRawBufferPointer]
        if dtype == .bf16 || copy {
            tensors = vars.map { v in
                let buffer = variableBuffer(v, bytes: v.count * size)
                put(v, into: buffer)
                return UnsafeRawBufferPointer(buffer)
            }
        } else {
            tensors = vars.map { UnsafeRawBufferPointer($0.gradient) }
        }
        return TensorStream.frames(tensors, maxFrameBytes: maxFrameBytes, elementSize: size)
    }

    /// Takes a values reply's tensors into `vars` (`TensorStream`: one packed frame, a frame each, or chunks),
    /// every size checked, and every value checked finite before any is taken (a worker trains on what it takes).
    /// - Returns: nil, or what was wrong (for the error naming the server); nothing was taken then.
    func takeValues(_ frames: ArraySlice<Frame>, into vars: [Variable]) -> String? {
        let size = dtype.size
        let tensors: [Frame]
        do { tensors = try TensorStream.split(frames, sizes: vars.map { $0.count * size }) } catch {
            return "\(error)"
        }
        for (v, frame) in zip(vars, tensors) where !frame.withUnsafeBytes({ finite($0) }) {
            return "values for \(v.name) that are not finite"
        }
        for (v, frame) in zip(vars, tensors) { frame.withUnsafeBytes { take($0, into: v) } }
        return nil
    }

    /// The float32 frames of `vars`' current values, for a register that carries them (a restore, or a
    /// server that came back without its checkpoint): views of the values, chunked past `maxFrameBytes`.
    static func valueFrames(_ vars: [Variable], maxFrameBytes: Int) -> [Frame] {
        TensorStream.frames(vars.map { UnsafeRawBufferPointer($0.value) }, maxFrameBytes: maxFrameBytes)
    }

    /// Whether every value in `bytes` (in the wire dtype) is finite: float32 by value, bfloat16 by its
    /// exponent bits (all ones is infinity or NaN).
    private func finite(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if dtype == .bf16 {
            var ok = true
            for k in stride(from: 0, to: bytes.count - 1, by: 2) {
                let hi = bytes[k + 1]
                let lo = bytes[k]
                ok = ok && !((hi & 0x7f) == 0x7f && (lo & 0x80) == 0x80)
            }
            return ok
        }
        return OptimizerSlots.allFinite(bytes.bindMemory(to: Float.self))
    }

    /// `v`'s gradient in the wire dtype, into `slot`.
    private func put(_ v: Variable, into slot: UnsafeMutableRawBufferPointer) {
        if dtype == .bf16 {
            BFloat16.encode(UnsafeBufferPointer(v.gradient), into: slot)
        } else {
            slot.copyMemory(from: UnsafeRawBufferPointer(v.gradient))
        }
    }

    /// Pulled values in the wire dtype, into `v`.
    private func take(_ bytes: UnsafeRawBufferPointer, into v: Variable) {
        if dtype == .bf16 {
            BFloat16.decode(bytes, into: v.value)
        } else {
            UnsafeMutableRawBufferPointer(v.value).copyMemory(from: bytes)
        }
    }

    private func variableBuffer(_ v: Variable, bytes: Int) -> UnsafeMutableRawBufferPointer {
        if let b = perVariable[ObjectIdentifier(v)], b.count == bytes { return b }
        perVariable[ObjectIdentifier(v)]?.deallocate()
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        let sized = UnsafeMutableRawBufferPointer(rebasing: b[0..<bytes])
        perVariable[ObjectIdentifier(v)] = sized
        return sized
    }

    private func serverBuffer(_ i: Int, bytes: Int) -> UnsafeMutableRawBufferPointer {
        if let b = perServer[i], b.count == bytes { return b }
        perServer[i]?.deallocate()
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        let sized = UnsafeMutableRawBufferPointer(rebasing: b[0..<bytes])
        perServer[i] = sized
        return sized
    }
}
