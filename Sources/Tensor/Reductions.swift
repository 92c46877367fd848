/// Row reductions with 16 independent lanes, so they vectorise (a plain `for` accumulation into one Float is a
/// serial dependency chain the compiler may not reorder). Results differ from a left-to-right sum only by
/// rounding order.
@inlinable
public func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    let raw = UnsafeRawPointer(x)
    while i + 16 <= n { acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// Σ (x_i − c)².
@inlinable
public func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, count n: Int, from c: Float) -> Float {
    var acc = SIMD16<Float>()
    let cv = SIMD16<Float>(repeating: c)
    var i = 0
    let raw = UnsafeRawPointer(x)
    while i + 16 <= n {
        let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - cv
        acc += d * d
        i += 16
    }
    var s = acc.sum()
    while i < n { let d = x[i] - c; s += d * d; i += 1 }
    return s
}
