/// Element types a variable may declare. Computation runs in float32; the others exist so that
/// declarations and sharing checks behave as in TensorFlow (`float64` vs `float32` mismatches, say).
public enum DType: String, Sendable, Codable, CaseIterable {
    case float32, float64, int32, int64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        }
    }

    /// The safetensors spelling (`F32`, `F64`, ...).
    public var safetensorsName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .int32: return "I32"
        case .int64: return "I64"
        }
    }
}

/// Formats a shape the way TensorFlow prints a `TensorShape` in its errors: `(2, 3)`, `(4,)`, `()`.
public func formatShape(_ shape: [Int]) -> String {
    if shape.count == 1 { return "(\(shape[0]),)" }
    return "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

/// The number of elements of a shape (1 for a scalar).
public func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }
