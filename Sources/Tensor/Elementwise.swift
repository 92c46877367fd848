import Foundation

@inlinable public func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { y[i] += x[i] }
}

/// SiLU(x) = x·σ(x) = x / (1 + e^(−x)).
@inlinable @inline(__always) public func silu(_ v: Float) -> Float { v / (1 + fastExp(-v)) }

@inlinable public func siluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = silu(x[i]) }
}

/// tanh-approximated GELU (timm `Mlp` in dense DiT): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
@inlinable @inline(__always) public func geluTanh(_ v: Float) -> Float {
    let c: Float = 0.7978845608028654  // √(2/π)
    return 0.5 * v * (1 + fastTanh(c * (v + 0.044715 * v * v * v)))
}

@inlinable public func geluTanhInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = geluTanh(x[i]) }
}

/// SwiGLU on fused gate/up rows, in place: each row of `fused` is `[gate (width) | up (width)]` (stride
/// `2·width`); afterwards its first `width` entries hold `SiLU(gate) ⊙ up`, ready for the down projection with
/// leading dimension `2·width`.
@inlinable public func swigluInPlace(_ fused: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
    for r in 0..<rows {
        let g = fused + r * 2 * width
        let u = g + width
        for i in 0..<width { g[i] = silu(g[i]) * u[i] }
    }
}
