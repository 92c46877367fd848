import Tensor

/// Seeded, deterministic parameter initialisation for configs without weights. Unlike upstream's adaLN-Zero init
/// (which makes an untrained model output exactly zero) every tensor gets non-zero values, so benchmarks and
/// tests exercise real routing: matrices uniform with std 1/√fan_in, biases and norms small around their neutral
/// value, `pos_embed` the exact 2-D sin-cos table. Values depend only on (seed, key).
enum RandomInit {
    static func fill(_ out: UnsafeMutablePointer<Float>, spec: TensorSpec, config: DiTConfig, seed: UInt64) {
        let n = spec.shape.reduce(1, *)
        if spec.key == "pos_embed" {
            let table = positionEmbedding2D(dim: config.hiddenSize, grid: config.grid)
            table.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: n) }
            return
        }
        var h = FNV1a()
        h.add(spec.key)
        var rng = SplitMix64(seed: seed ^ h.state)
        let isNormWeight = spec.key.hasSuffix("norm.weight")
        let std: Float
        var offset: Float = 0
        if spec.shape.count == 1 {
            std = 0.02
            if isNormWeight { offset = 1 }
        } else if spec.key == "y_embedder.embedding_table.weight" {
            std = 0.5
        } else {
            std = 1 / Float(spec.shape.dropFirst().reduce(1, *)).squareRoot()
        }
        let a = std * 1.7320508  // uniform(−a, a) has std a/√3
        for i in 0..<n { out[i] = offset + a * (2 * rng.nextUnitFloat() - 1) }
    }
}
