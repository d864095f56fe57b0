/// How tensors cross the wire: float32 as computed, or bfloat16 (the top 16 bits of a float32, rounded to
/// nearest even), which halves the traffic while the server keeps float32 masters and optimizer state.
public enum WireDType: String, Codable, Sendable, CaseIterable {
    case float32
    case bf16

    /// Bytes per element on the wire.
    public var size: Int { self == .float32 ? 4 : 2 }
}

/// bfloat16 conversion.
public enum BFloat16 {
    /// One float32 as bfloat16, rounded to nearest, ties to even; NaN stays NaN.
    @inline(__always)
    public static func encode(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let lsb = (bits >> 16) & 1
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ lsb) >> 16)
    }

    @inline(__always)
    public static func decode(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Encodes `source` into `destination` (2 bytes per value, little-endian).
    public static func encode(_ source: UnsafeBufferPointer<Float>, into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= source.count * 2, "bfloat16 buffer too small")
        for i in 0..<source.count {
            destination.storeBytes(of: encode(source[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
        }
    }

    /// Decodes `source` (2 bytes per value) into `destination`.
    public static func decode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count >= destination.count * 2, "bfloat16 frame too small")
        for i in 0..<destination.count {
            destination[i] = decode(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }

    /// A float32 array as bfloat16 bytes.
    public static func bytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 2)
        values.withUnsafeBufferPointer { src in out.withUnsafeMutableBytes { encode(src, into: $0) } }
        return out
    }
}
