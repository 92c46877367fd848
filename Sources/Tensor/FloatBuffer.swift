/// An owned, 64-byte-aligned, uninitialised-then-zeroed Float32 buffer. Engine scratch space is allocated as
/// FloatBuffers once (per model and maximum batch) and reused; hot paths only ever see its raw pointer.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }
    public func zero() { pointer.update(repeating: 0, count: count) }
}

/// Same for Int32 / Int (routing indices, offsets).
public final class TypedBuffer<Element> {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Element>

    public init(count: Int, repeating value: Element) {
        self.count = count
        pointer = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
    }

    deinit { pointer.deinitialize(count: max(count, 1)); pointer.deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Element] { Array(buffer) }
}
