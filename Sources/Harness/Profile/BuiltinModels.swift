// Built-in model names and their shapes (spec ditmoe §2.1–§2.2):
//   DiT-MoE-{S,B,L,XL,G}/{2,4,8}-<E>E<K>A   e.g. DiT-MoE-S/2-8E2A (G only with /2)
//   DiT-{S,B,L,XL}/{2,4,8}                  dense DiT baselines (facebookresearch/DiT)
// MoE XL and G use the flash attention layout (qk-norm); S/B/L and every dense DiT the timm layout.
import Metrics

public enum BuiltinModels {
    /// (depth, hidden, heads) per size letter.
    static let sizes: [String: (Int, Int, Int)] = [
        "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16), "G": (40, 1408, 16),
    ]

    /// Names listed in `--help` and in profile errors.
    public static let examples = ["DiT-MoE-S/2-8E2A", "DiT-MoE-S/2-16E2A", "DiT-MoE-B/2-8E2A", "DiT-MoE-L/2-8E2A",
                                  "DiT-MoE-XL/2-8E2A", "DiT-MoE-G/2-16E2A", "DiT-S/2", "DiT-B/2", "DiT-L/2", "DiT-XL/2"]

    /// The shape of a built-in name at `imageSize` (pixels; latent side = imageSize / 8), or nil if the name is not
    /// a built-in. `depth` overrides the number of blocks (for small test runs).
    public static func shape(_ name: String, imageSize: Int = 256, depth: Int? = nil) -> ModelShape? {
        var rest = Substring(name)
        guard rest.hasPrefix("DiT-") else { return nil }
        rest = rest.dropFirst(4)
        let moe = rest.hasPrefix("MoE-")
        if moe { rest = rest.dropFirst(4) }
        let parts = rest.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let size = sizes[String(parts[0])] else { return nil }
        var experts = 0, topK = 0
        let patchPart: Substring
        if moe {
            let pe = parts[1].split(separator: "-", maxSplits: 1)
            guard pe.count == 2, pe[1].hasSuffix("A"), let eIdx = pe[1].firstIndex(of: "E"),
                  let e = Int(pe[1][..<eIdx]), let k = Int(pe[1][pe[1].index(after: eIdx)..<pe[1].index(before: pe[1].endIndex)]),
                  e > 0, k > 0, k <= e else { return nil }
            experts = e
            topK = k
            patchPart = pe[0]
        } else {
            patchPart = parts[1]
            if parts[0] == "G" { return nil }   // no dense G
        }
        guard let patch = Int(patchPart), [2, 4, 8].contains(patch) else { return nil }
        if parts[0] == "G" && patch != 2 { return nil }
        let latent = imageSize / 8
        guard imageSize % 8 == 0, latent % patch == 0 else { return nil }
        return ModelShape(depth: depth ?? size.0, hidden: size.1, heads: size.2, patchSize: patch, inputSize: latent,
                          inChannels: 4, numClasses: 1000, experts: experts, topK: topK,
                          flashLayout: moe && (parts[0] == "XL" || parts[0] == "G"))
    }
}
