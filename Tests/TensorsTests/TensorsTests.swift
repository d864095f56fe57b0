import Testing

@testable import Tensors

@Suite("Tensors")
struct TensorsTests {
    @Test("shapes print as TensorFlow prints them")
    func shapes() {
        #expect(formatShape([3, 4]) == "(3, 4)")
        #expect(formatShape([5]) == "(5,)")
        #expect(formatShape([]) == "()")
    }

    @Test("dtypes have their sizes and names")
    func dtypes() {
        #expect(DType.float32.size == 4 && DType.float64.size == 8)
        #expect(DType(rawValue: "float32") == .float32 && DType(rawValue: "f32") == nil)
        #expect(DType.allCases.map(\.safetensorsName) == ["F32", "F64", "I32", "I64"])
    }

    @Test("a tensor's count is its shape's element count; a scalar has one")
    func tensors() {
        #expect(Tensor(shape: [2, 3], scalars: Array(repeating: 1, count: 6)).count == 6)
        #expect(Tensor(2.5).shape == [] && Tensor(2.5).scalars == [2.5])
        #expect(Tensor(repeating: 0, shape: [4]).scalars == [0, 0, 0, 0])
        #expect(elementCount([]) == 1 && elementCount([3, 0]) == 0)
    }
}
