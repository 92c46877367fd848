import Foundation

/// A DiT-MoE or dense DiT architecture (feizc/DiT-MoE and facebookresearch/DiT `models.py`). Field names follow the
/// upstream constructor.
public struct DiTConfig: Codable, Equatable, Sendable {
    public var name: String
    /// Latent side length H = W (32 for 256² images).
    public var inputSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    public var numClasses: Int
    public var learnSigma: Bool
    /// Routed experts E and experts per token K (ignored when `dense`).
    public var numExperts: Int
    public var numExpertsPerTok: Int
    /// Upstream's flash attention layout (`FlashSelfMHAModified`, XL and G): `Wqkv`/`out_proj` with an affine q/k
    /// LayerNorm over each head's dims, its parameters shared by all heads.
    public var useFlashAttn: Bool
    /// Dense DiT baseline (timm `Mlp` with tanh-GELU, keys `mlp.fc1`/`mlp.fc2`) instead of the MoE.
    public var dense: Bool
    /// Upstream `n_shared_experts`: the always-on shared expert is one SwiGLU of width `numSharedExperts·D`
    /// (2 in every released model); 0 removes it (the shared-expert ablation; upstream hard-codes 2).
    public var numSharedExperts: Int

    public init(name: String, inputSize: Int = 32, patchSize: Int, inChannels: Int = 4, hiddenSize: Int, depth: Int,
                numHeads: Int, mlpRatio: Double = 4, numClasses: Int = 1000, learnSigma: Bool = true,
                numExperts: Int = 8, numExpertsPerTok: Int = 2, useFlashAttn: Bool = false, dense: Bool = false,
                numSharedExperts: Int = 2) {
        self.name = name; self.inputSize = inputSize; self.patchSize = patchSize; self.inChannels = inChannels
        self.hiddenSize = hiddenSize; self.depth = depth; self.numHeads = numHeads; self.mlpRatio = mlpRatio
        self.numClasses = numClasses; self.learnSigma = learnSigma; self.numExperts = numExperts
        self.numExpertsPerTok = numExpertsPerTok; self.useFlashAttn = useFlashAttn; self.dense = dense
        self.numSharedExperts = numSharedExperts
    }

    // Derived shapes.
    public var grid: Int { inputSize / patchSize }
    public var tokens: Int { grid * grid }
    public var headDim: Int { hiddenSize / numHeads }
    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
    public var patchVector: Int { inChannels * patchSize * patchSize }
    public var finalVector: Int { patchSize * patchSize * outChannels }
    /// Routed expert width (`mlp_ratio·D`, 4D in every released config) and dense MLP width.
    public var expertHidden: Int { Int(mlpRatio * Double(hiddenSize)) }
    /// The always-on shared expert: one SwiGLU of width `n_shared_experts`·D (2D upstream); 0 when there is none.
    public var sharedHidden: Int { dense ? 0 : numSharedExperts * hiddenSize }
    public var hasSharedExpert: Bool { sharedHidden > 0 }
    public var isMoE: Bool { !dense }
    /// Index of the null (unconditional) class in the label table.
    public var nullClass: Int { numClasses }
    /// Number of label-table rows: classes plus the null class (class_dropout_prob > 0 upstream).
    public var labelRows: Int { numClasses + 1 }

    /// Checks internal consistency; errors name the field and what was expected.
    public func validate(source: String = "config") throws {
        func fail(_ field: String, _ expected: String, _ got: Any) throws -> Never {
            throw DiTError.badConfig(source: source, field: field, expected: expected, got: "\(got)")
        }
        if inputSize <= 0 { try fail("input_size", "a positive integer", inputSize) }
        if patchSize <= 0 || inputSize % patchSize != 0 {
            try fail("patch_size", "a positive divisor of input_size \(inputSize)", patchSize)
        }
        if inChannels <= 0 { try fail("in_channels", "a positive integer", inChannels) }
        if hiddenSize <= 0 || hiddenSize % 4 != 0 { try fail("hidden_size", "a positive multiple of 4", hiddenSize) }
        if depth <= 0 { try fail("depth", "a positive integer", depth) }
        if numHeads <= 0 || hiddenSize % numHeads != 0 {
            try fail("num_heads", "a positive divisor of hidden_size \(hiddenSize)", numHeads)
        }
        if !(mlpRatio > 0) || Double(expertHidden) != mlpRatio * Double(hiddenSize) {
            try fail("mlp_ratio", "a positive ratio with mlp_ratio·hidden_size an integer", mlpRatio)
        }
        if numClasses <= 0 { try fail("num_classes", "a positive integer", numClasses) }
        if !dense {
            if numExperts <= 0 { try fail("num_experts", "a positive integer", numExperts) }
            if numExpertsPerTok <= 0 || numExpertsPerTok > numExperts {
                try fail("num_experts_per_tok", "between 1 and num_experts (\(numExperts))", numExpertsPerTok)
            }
            if numSharedExperts < 0 || numSharedExperts > 64 {
                try fail("n_shared_experts", "between 0 and 64 (shared-expert width in units of hidden_size)", numSharedExperts)
            }
        }
        if dense && useFlashAttn { try fail("use_flash_attn", "false for the dense DiT baseline", true) }
    }

    private enum CodingKeys: String, CodingKey {
        case name, inputSize = "input_size", patchSize = "patch_size", inChannels = "in_channels"
        case hiddenSize = "hidden_size", depth, numHeads = "num_heads", mlpRatio = "mlp_ratio"
        case numClasses = "num_classes", learnSigma = "learn_sigma", numExperts = "num_experts"
        case numExpertsPerTok = "num_experts_per_tok", useFlashAttn = "use_flash_attn", dense
        case numSharedExperts = "n_shared_experts"
    }
}

// MARK: - Built-in configurations

extension DiTConfig {
    /// Size presets of upstream `models.py` (DiT-MoE Table 1): depth, hidden size, heads.
    public static let sizes: [(name: String, depth: Int, hidden: Int, heads: Int)] = [
        ("S", 12, 384, 6), ("B", 12, 768, 12), ("L", 24, 1024, 16), ("XL", 28, 1152, 16), ("G", 40, 1408, 16),
    ]

    /// The released checkpoints' configurations and the dense baselines, for listings and `--help`.
    public static let examples = ["DiT-MoE-S/2-8E2A", "DiT-MoE-S/2-16E2A", "DiT-MoE-B/2-8E2A", "DiT-MoE-L/2-8E2A",
                                  "DiT-MoE-XL/2-8E2A", "DiT-MoE-G/2-16E2A", "DiT-S/2", "DiT-B/2", "DiT-L/2",
                                  "DiT-XL/2"]

    /// Parses a built-in name: `DiT-MoE-<S|B|L|XL|G>/<2|4|8>-<E>E<K>A` or dense `DiT-<S|B|L|XL>/<2|4|8>`, with an
    /// optional `@512` suffix for 512² images (latent 64). XL and G use the flash attention layout, as upstream
    /// `sample.py` builds them.
    public static func named(_ name: String) throws -> DiTConfig {
        var rest = Substring(name)
        var inputSize = 32
        if let at = rest.firstIndex(of: "@") {
            guard let res = Int(rest[rest.index(after: at)...]), res > 0, res % 8 == 0 else {
                throw DiTError.unknownConfig(name: name, hint: "the suffix after @ is the image size, e.g. @256 or @512")
            }
            inputSize = res / 8
            rest = rest[..<at]
        }
        let moe = rest.hasPrefix("DiT-MoE-")
        guard moe || rest.hasPrefix("DiT-") else { throw DiTError.unknownConfig(name: name, hint: nil) }
        rest = rest.dropFirst(moe ? 8 : 4)
        let parts = rest.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let size = sizes.first(where: { $0.name == parts[0] }) else {
            throw DiTError.unknownConfig(name: name, hint: "size must be one of S, B, L, XL, G")
        }
        var tail = parts[1]
        let patchText = tail.prefix(while: \.isNumber)
        guard let patch = Int(patchText), [2, 4, 8].contains(patch) else {
            throw DiTError.unknownConfig(name: name, hint: "patch size must be 2, 4 or 8")
        }
        if size.name == "G" && patch != 2 {
            throw DiTError.unknownConfig(name: name, hint: "DiT-MoE-G exists with patch size 2 only")
        }
        tail = tail.dropFirst(patchText.count)
        var experts = 8, topK = 2
        if moe {
            // "-8E2A"
            guard tail.first == "-", let e = tail.dropFirst().split(separator: "E").first, let ne = Int(e),
                  tail.hasSuffix("A"), let kText = tail.split(separator: "E").last?.dropLast(), let k = Int(kText),
                  ne > 0, k > 0, k <= ne
            else {
                throw DiTError.unknownConfig(name: name, hint: "MoE names end in -<experts>E<top-k>A, e.g. -8E2A")
            }
            experts = ne; topK = k
        } else if !tail.isEmpty || size.name == "G" {
            throw DiTError.unknownConfig(name: name, hint: size.name == "G" ? "there is no dense DiT-G" : nil)
        }
        let flash = moe && (size.name == "XL" || size.name == "G")
        let config = DiTConfig(name: name, inputSize: inputSize, patchSize: patch, hiddenSize: size.hidden,
                               depth: size.depth, numHeads: size.heads, numExperts: experts, numExpertsPerTok: topK,
                               useFlashAttn: flash, dense: !moe)
        try config.validate(source: name)
        return config
    }

    /// Reads a JSON config whose keys are the upstream constructor's argument names. `dense: true` selects the
    /// dense baseline; other upstream keys (`class_dropout_prob`, `pretraining_tp`, …) are accepted and ignored;
    /// a key that is neither is an error naming it.
    public static func load(jsonFile path: String) throws -> DiTConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiTError.io(path: path, reason: "cannot read the file")
        }
        guard case let .object(dict)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw DiTError.badConfig(source: path, field: "(top level)", expected: "a JSON object", got: "something else")
        }
        let known: Set<String> = ["name", "input_size", "patch_size", "in_channels", "hidden_size", "depth",
                                  "num_heads", "mlp_ratio", "num_classes", "learn_sigma", "num_experts",
                                  "num_experts_per_tok", "use_flash_attn", "dense", "n_shared_experts"]
        let ignored: Set<String> = ["class_dropout_prob", "pretraining_tp"]
        for key in dict.keys.sorted() where !known.contains(key) && !ignored.contains(key) {
            throw DiTError.badConfig(source: path, field: key, expected: "one of \(known.sorted().joined(separator: ", "))",
                                     got: "an unknown key")
        }
        func int(_ key: String, _ def: Int?) throws -> Int {
            switch dict[key] {
            case nil:
                if let def { return def }
                throw DiTError.badConfig(source: path, field: key, expected: "an integer", got: "nothing (missing)")
            case let .number(v)? where v == v.rounded() && abs(v) < 1e9: return Int(v)
            case let v?: throw DiTError.badConfig(source: path, field: key, expected: "an integer", got: v.description)
            }
        }
        func bool(_ key: String, _ def: Bool) throws -> Bool {
            switch dict[key] {
            case nil: return def
            case let .bool(b)?: return b
            case let v?: throw DiTError.badConfig(source: path, field: key, expected: "true or false", got: v.description)
            }
        }
        let ratio: Double
        switch dict["mlp_ratio"] {
        case nil: ratio = 4
        case let .number(v)?: ratio = v
        case let v?: throw DiTError.badConfig(source: path, field: "mlp_ratio", expected: "a number", got: v.description)
        }
        var name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if case let .string(s)? = dict["name"] { name = s }
        let config = DiTConfig(
            name: name, inputSize: try int("input_size", 32), patchSize: try int("patch_size", 2),
            inChannels: try int("in_channels", 4), hiddenSize: try int("hidden_size", nil), depth: try int("depth", nil),
            numHeads: try int("num_heads", nil), mlpRatio: ratio, numClasses: try int("num_classes", 1000),
            learnSigma: try bool("learn_sigma", true), numExperts: try int("num_experts", 8),
            numExpertsPerTok: try int("num_experts_per_tok", 2), useFlashAttn: try bool("use_flash_attn", false),
            dense: try bool("dense", false), numSharedExperts: try int("n_shared_experts", 2))
        try config.validate(source: path)
        return config
    }

    /// A built-in name (including the digits models), or a path to a JSON file (anything ending in `.json`).
    public static func resolve(_ nameOrPath: String) throws -> DiTConfig {
        if let d = digits[nameOrPath] { return d }
        return nameOrPath.hasSuffix(".json") ? try load(jsonFile: nameOrPath) : try named(nameOrPath)
    }

    /// The small models moebench trains on the UCI digits (8×8, one channel, 10 classes, 4×4 tokens of 2×2
    /// patches): `digits-moe` (D = 128, depth 4, 4 heads, 8 experts top-2, one shared expert of width 2D) and its
    /// dense twin `digits-dense` (D = 192, same depth and heads, tanh-GELU MLP of width 4D), whose activated
    /// parameters are within 10% of the MoE's (`ModelCost`: 2.72 M for the MoE, 2.83 M for the dense twin).
    public static let digits: [String: DiTConfig] = [
        "digits-moe": DiTConfig(name: "digits-moe", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 128, depth: 4,
                                numHeads: 4, numClasses: 10, numExperts: 8, numExpertsPerTok: 2),
        "digits-dense": DiTConfig(name: "digits-dense", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 192,
                                  depth: 4, numHeads: 4, numClasses: 10, dense: true),
        // The ablations: the same MoE trained without the balance loss (α = 0) and without the shared expert.
        "digits-moe-alpha0": DiTConfig(name: "digits-moe-alpha0", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 128,
                                       depth: 4, numHeads: 4, numClasses: 10, numExperts: 8, numExpertsPerTok: 2),
        "digits-moe-noshared": DiTConfig(name: "digits-moe-noshared", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 128,
                                         depth: 4, numHeads: 4, numClasses: 10, numExperts: 8, numExpertsPerTok: 2,
                                         numSharedExperts: 0),
    ]
}
