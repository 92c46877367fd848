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

/// SwiGLU of fused gate/up rows into a dense matrix: row r of `fused` is `[gate (width) | up (width)]` at offset
/// `r·2·width`; `out[r·width + i] = scale[r] · SiLU(gate_i) · up_i` (no scaling when `scale` is nil). `out` must
/// not overlap `fused` (the loop is vectorised on that assumption).
@inlinable public func swiglu(_ fused: UnsafePointer<Float>, rows: Int, width: Int, scale: UnsafePointer<Float>?,
                              into out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let g = fused + r * 2 * width, u = g + width, o = out + r * width
        let s = scale?[r] ?? 1
        for i in 0..<width { o[i] = s * silu(g[i]) * u[i] }
    }
}

/// `swiglu` rounded to BF16 (nearest even) into a separate dense
/// `[rows, width]` matrix `out`: `out[r·width + i] = bf16(scale[r] · SiLU(gate) ⊙ up)`.
@inlinable public func swigluToBF16(_ fused: UnsafePointer<Float>, rows: Int, width: Int, scale: UnsafePointer<Float>?,
                                    into out: UnsafeMutablePointer<UInt16>) {
    for r in 0..<rows {
        let g = fused + r * 2 * width, u = g + width, o = out + r * width
        let s = scale?[r] ?? 1
        for i in 0..<width { o[i] = bf16Bits(s * silu(g[i]) * u[i]) }
    }
}
