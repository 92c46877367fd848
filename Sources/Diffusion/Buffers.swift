// Owned scratch buffers, allocated once per sampler call (never per step): Tensor's FloatBuffer/TypedBuffer,
// with the short spellings the integrators use.
import Tensor

typealias DoubleBuffer = TypedBuffer<Double>

extension FloatBuffer {
    convenience init(_ count: Int) { self.init(count: count) }
    var p: UnsafeMutablePointer<Float> { pointer }
}

extension TypedBuffer where Element == Double {
    convenience init(_ count: Int) { self.init(count: count, repeating: 0) }
    var p: UnsafeMutablePointer<Double> { pointer }
}
