// TOML → Profile, strictly: unknown keys, wrong types, bad values and dangling model references are errors naming
// the file and the key path. Defaults are listed in profiles/README.md (keep the two in sync).
import Foundation
import Wire
import Diffusion
import TOMLKit

extension Profile {
    /// Reads and parses a profile file.
    public static func load(path: String) throws -> Profile {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ProfileError(.unreadable, file: path, keyPath: "", "cannot read the file (missing, unreadable or not UTF-8)")
        }
        return try parse(toml: text, file: path,
                         baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path)
    }

    /// The embedded default profile (identical to profiles/default.toml; a test checks it). Its relative paths
    /// resolve as they do for profiles/default.toml — against `<checkout>/profiles` of the checkout the binary was
    /// built in — so it runs from any directory.
    public static func embeddedDefault() throws -> Profile {
        try parse(toml: EmbeddedProfiles.defaultTOML, file: "<embedded default>", defaultName: "default",
                  baseDirectory: (checkoutDirectory ?? FileManager.default.currentDirectoryPath) + "/profiles")
    }

    /// The checkout of a binary at `<checkout>/.build/[<triple>/]<configuration>/moebench`: the nearest ancestor
    /// of the executable's directory that holds `Package.swift` and `profiles/`.
    static var checkoutDirectory: String? {
        guard let exe = MoebenchVersion.executableDirectory else { return nil }
        var dir = URL(fileURLWithPath: exe).standardizedFileURL
        for _ in 0..<5 {
            dir = dir.deletingLastPathComponent()
            let fm = FileManager.default
            if fm.fileExists(atPath: dir.path + "/Package.swift") && fm.fileExists(atPath: dir.path + "/profiles") { return dir.path }
        }
        return nil
    }

    /// Parses profile text. `file` names the source in errors; `defaultName` is used when the profile has no `name`.
    /// Relative paths (`hosts`, `secret_file`, model `config` and `weights`) are resolved against `baseDirectory`
    /// (default: the current directory) and must exist: the error names the key and the full path.
    public static func parse(toml: String, file: String, defaultName: String? = nil,
                             baseDirectory: String = FileManager.default.currentDirectoryPath) throws -> Profile {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: toml)
        } catch let e as TOMLParseError {
            throw ProfileError(.syntax, file: file, keyPath: "", "invalid TOML: \(e.description)",
                               line: e.source.begin.line, column: e.source.begin.column)
        }
        var root = TOMLReader(table, file: file, path: "")
        let stem = defaultName ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let name = try root.string("name") ?? stem
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw root.error(.badValue, "name", "expected letters, digits, '-', '_' or '.', found \"\(name)\"")
        }
        let description = try root.string("description") ?? ""

        let run = try parseRun(try root.table("run"), root)
        let models = try parseModels(&root)
        let cluster = try root.table("cluster").map(parseCluster)
        let codecs = try (root.tables("codec") ?? []).map(parseCodec)
        let ids = Dictionary(models.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let cost = try root.table("cost").flatMap { try parseCost($0, ids: ids, cluster: cluster) }
        let loadBalance = try root.table("load_balance").flatMap { try parseLoadBalance($0, ids: ids, cluster: cluster) }
        let curves = try root.table("curves").flatMap(parseCurves)
        try root.finish(known: ["name", "description", "run", "models", "cost", "cluster", "codec", "load_balance", "curves"])
        var profile = Profile(name: name, description: description, source: file, run: run, models: models, cost: cost,
                              cluster: cluster, codecs: codecs, loadBalance: loadBalance, curves: curves)
        try profile.resolvePaths(against: baseDirectory, file: file)
        return profile
    }

    /// Makes every relative path absolute against `base` and checks that each file exists.
    mutating func resolvePaths(against base: String, file: String) throws {
        func absolute(_ p: String) -> String {
            p.hasPrefix("/") ? p : URL(fileURLWithPath: base).appendingPathComponent(p).standardizedFileURL.path
        }
        func check(_ p: String, _ key: String, _ what: String) throws -> String {
            let full = absolute(p)
            guard FileManager.default.fileExists(atPath: full) else {
                throw ProfileError(.badValue, file: file, keyPath: key, "\(what) \(full) does not exist (relative paths resolve against \(base))")
            }
            return full
        }
        for i in models.indices {
            if let c = models[i].config { models[i].config = try check(c, "models[\(i)].config", "model config") }
            if let w = models[i].weights, w != "learned" { models[i].weights = try check(w, "models[\(i)].weights", "weights file") }
        }
        if let h = cluster?.hosts { cluster!.hosts = try check(h, "cluster.hosts", "hosts file") }
        if let s = cluster?.secretFile { cluster!.secretFile = absolute(s) }
    }

    static func seeds(_ r: inout TOMLReader, _ key: String) throws -> [UInt64]? {
        try r.intArray(key, in: 0...Int.max, "a seed ≥ 0").map { $0.map { UInt64($0) } }
    }

    static func parseRun(_ t: TOMLReader?, _ root: TOMLReader) throws -> RunSettings {
        var r = t ?? TOMLReader(TOMLTable(), file: root.file, path: "run")
        let out = RunSettings(
            seeds: try seeds(&r, "seeds") ?? [0],
            warmupIterations: try r.int("warmup_iterations", in: 0...1_000_000, "an integer ≥ 0") ?? 1,
            minIterations: try r.int("min_iterations", in: 1...1_000_000_000, "an integer ≥ 1") ?? 5,
            minDurationSeconds: try r.double("min_duration_s", { $0 >= 0 }, "a duration ≥ 0 (seconds)") ?? 0,
            maxDurationSeconds: try r.double("max_duration_s", { $0 > 0 }, "a duration > 0 (seconds)"),
            threads: try r.int("threads", in: 1...1024, "a worker-thread count ≥ 1"))
        if let max = out.maxDurationSeconds, max < out.minDurationSeconds {
            throw r.error(.badValue, r.keyPath("max_duration_s"), "expected a duration ≥ run.min_duration_s (\(out.minDurationSeconds)), found \(max)")
        }
        try r.finish(known: ["seeds", "warmup_iterations", "min_iterations", "min_duration_s", "max_duration_s", "threads"])
        return out
    }

    static func parseModels(_ root: inout TOMLReader) throws -> [ModelSpec] {
        var seen = Set<String>()
        return try (root.tables("models") ?? []).map { t in
            var r = t
            let id = try r.requiredString("id")
            guard !id.isEmpty, id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw r.error(.badValue, r.keyPath("id"), "expected letters, digits, '-', '_' or '.', found \"\(id)\"")
            }
            guard seen.insert(id).inserted else { throw r.error(.badValue, r.keyPath("id"), "duplicate model id \"\(id)\"") }
            let builtin = try r.string("builtin")
            let config = try r.string("config")
            let weights = try r.string("weights")
            let imageSize = try r.int("image_size", in: 16...4096, "an image size in pixels, a multiple of 8 (e.g. 256)")
            let depth = try r.int("depth", in: 1...1000, "a block count ≥ 1")
            if let imageSize, imageSize % 8 != 0 {
                throw r.error(.badValue, r.keyPath("image_size"), "expected a multiple of 8 (latent = size/8), found \(imageSize)")
            }
            switch (builtin, config) {
            case (nil, nil):
                throw r.error(.missingKey, r.keyPath("builtin"), "a model needs `builtin` (e.g. \"DiT-MoE-S/2-8E2A\") or `config` (a JSON file)")
            case (.some, .some):
                throw r.error(.badValue, r.keyPath("config"), "expected either `builtin` or `config`, not both")
            case let (b?, nil):
                guard BuiltinModels.shape(b) != nil else {
                    throw r.error(.badValue, r.keyPath("builtin"), "expected a built-in model name like \(BuiltinModels.examples.map { "\"\($0)\"" }.joined(separator: ", ")); found \"\(b)\"")
                }
                if BuiltinModels.shape(b, imageSize: imageSize ?? 256, depth: depth) == nil {
                    throw r.error(.badValue, r.keyPath("image_size"), "latent size \((imageSize ?? 256) / 8) is not divisible by the patch size of \(b)")
                }
            case (nil, _?):
                if depth != nil { throw r.error(.badValue, r.keyPath("depth"), "`depth` overrides built-ins only; set it in the JSON config") }
            }
            try r.finish(known: ["id", "builtin", "config", "weights", "image_size", "depth"])
            return ModelSpec(id: id, builtin: builtin, config: config, weights: weights, imageSize: imageSize, depth: depth)
        }
    }

    static func modelRef(_ id: String, at keyPath: String, ids: [String: ModelSpec], _ r: TOMLReader,
                         mustBeMoE: Bool? = nil) throws {
        guard let m = ids[id] else {
            throw r.error(.badReference, keyPath, "unknown model id \"\(id)\"; defined: \(ids.keys.sorted().joined(separator: ", "))")
        }
        if let mustBeMoE, let shape = m.builtinShape, shape.isMoE != mustBeMoE {
            throw r.error(.badReference, keyPath, "expected \(mustBeMoE ? "an MoE" : "a dense") model, but \"\(id)\" is \(m.builtin!)")
        }
    }

    static func parseCost(_ t: TOMLReader, ids: [String: ModelSpec], cluster: ClusterSettings?) throws -> CostSuite? {
        var r = t
        let enabled = try r.bool("enabled") ?? true
        let models = try r.stringArray("models") ?? []
        if models.isEmpty { throw r.error(.missingKey, r.keyPath("models"), "missing; expected a non-empty array of model ids") }
        for (i, m) in models.enumerated() { try modelRef(m, at: r.keyPath("models") + "[\(i)]", ids: ids, r) }
        let baselines = try r.stringArray("baselines") ?? []
        for (i, m) in baselines.enumerated() { try modelRef(m, at: r.keyPath("baselines") + "[\(i)]", ids: ids, r, mustBeMoE: false) }
        let batches = try r.intArray("batch_sizes", in: 1...4096, "a batch size ≥ 1") ?? [1]
        let scenarios = try r.choiceArray("scenarios", Scenario.self) ?? [.singleStream]
        let execution = try r.choiceArray("execution", ExecutionMode.self) ?? [.inProcess]
        if let i = execution.firstIndex(of: .cluster), cluster == nil {
            throw r.error(.badValue, r.keyPath("execution") + "[\(i)]", "\"cluster\" needs a [cluster] table with a hosts file")
        }
        let cfg = try r.bool("cfg") ?? true
        var offlineQueries = 8
        if var o = try r.table("offline") {
            offlineQueries = try o.int("queries", in: 1...1_000_000, "a query count ≥ 1") ?? 8
            try o.finish(known: ["queries"])
        }
        var qps: Double?, duration: Double?, latency: Double?
        if var s = try r.table("server") {
            qps = try s.double("target_qps", { $0 > 0 }, "an arrival rate > 0 (queries per second)")
            duration = try s.double("duration_s", { $0 > 0 }, "a duration > 0 (seconds)")
            latency = try s.double("target_latency_ms", { $0 > 0 }, "a latency bound > 0 (milliseconds)")
            try s.finish(known: ["target_qps", "duration_s", "target_latency_ms"])
        }
        if let i = scenarios.firstIndex(of: .server), qps == nil {
            throw r.error(.missingKey, r.keyPath("server.target_qps"), "scenarios[\(i)] is \"server\": expected [cost.server] with target_qps")
        }
        try r.finish(known: ["enabled", "models", "baselines", "batch_sizes", "scenarios", "execution", "cfg", "offline", "server"])
        guard enabled else { return nil }
        return CostSuite(models: models, baselines: baselines, batchSizes: batches, scenarios: scenarios,
                         execution: execution, cfg: cfg, offlineQueries: offlineQueries, serverTargetQPS: qps,
                         serverDurationSeconds: qps == nil ? nil : (duration ?? 10), serverTargetLatencyMs: latency)
    }

    static func parseCluster(_ t: TOMLReader) throws -> ClusterSettings {
        var r = t
        let out = ClusterSettings(hosts: try r.requiredString("hosts"),
                                  launch: try r.choice("launch", ClusterSettings.Launch.self) ?? .local,
                                  secretFile: try r.string("secret_file"))
        try r.finish(known: ["hosts", "launch", "secret_file"])
        return out
    }

    static func parseCodec(_ t: TOMLReader) throws -> ShardOptions {
        var r = t
        let d = try r.string("dtype") ?? "f32", z = try r.string("lz4") ?? "auto"
        guard let dtype = ShardDType.allCases.first(where: { $0.description == d }) else {
            throw r.error(.badValue, r.keyPath("dtype"), "expected one of \"f32\", \"f16\", \"bf16\", found \"\(d)\"")
        }
        guard let mode = ShardOptions.lz4Names.first(where: { $0.value == z })?.key else {
            throw r.error(.badValue, r.keyPath("lz4"), "expected one of \"on\", \"off\", \"auto\", found \"\(z)\"")
        }
        let out = ShardOptions(dtype: dtype, shuffle: try r.bool("shuffle") ?? false, compression: mode)
        try r.finish(known: ["dtype", "shuffle", "lz4"])
        return out
    }

    static func parseLoadBalance(_ t: TOMLReader, ids: [String: ModelSpec], cluster: ClusterSettings?) throws -> LoadBalanceSuite? {
        var r = t
        let enabled = try r.bool("enabled") ?? true
        let model = try r.requiredString("model")
        try modelRef(model, at: r.keyPath("model"), ids: ids, r, mustBeMoE: true)
        let execution = try r.choice("execution", ExecutionMode.self) ?? .inProcess
        if execution == .cluster, cluster == nil {
            throw r.error(.badValue, r.keyPath("execution"), "\"cluster\" needs a [cluster] table with a hosts file")
        }
        let depth = ids[model]?.builtinShape?.depth
        let out = LoadBalanceSuite(
            model: model,
            execution: execution,
            sampler: try r.choice("sampler", DiTSampler.self) ?? .ddim,
            steps: try r.int("steps", in: 1...10_000, "a step count ≥ 1") ?? 10,
            cfgScale: try r.double("cfg_scale", { $0 >= 1 }, "a guidance scale ≥ 1 (1 = no guidance)") ?? 1.5,
            classes: try r.intArray("classes", in: 0...999, "an ImageNet class label in 0...999") ?? [0],
            samplesPerClass: try r.int("samples_per_class", in: 1...100_000, "an integer ≥ 1") ?? 1,
            countUnconditional: try r.bool("count_unconditional") ?? false,
            extraSlotsPerWorker: try r.int("extra_slots_per_worker", in: 0...1024, "an integer ≥ 0") ?? 1,
            heatmapLayers: try r.intArray("heatmap_layers", in: 0...(max(depth ?? 1000, 1) - 1),
                                          "a layer index in 0...\(max(depth ?? 1000, 1) - 1)"),
            ablations: try r.stringArray("ablations") ?? [])
        for a in out.ablations { try modelRef(a, at: r.keyPath("ablations"), ids: ids, r, mustBeMoE: true) }
        try r.finish(known: ["enabled", "model", "execution", "sampler", "steps", "cfg_scale", "classes",
                             "samples_per_class", "count_unconditional", "extra_slots_per_worker", "heatmap_layers", "ablations"])
        return enabled ? out : nil
    }

    /// `[curves]`: keys named as CurvesSettings' fields (snake_case), absent keys from `CurvesSettings.standard`,
    /// every rule checked by `CurvesSettings.validate` (the same as `moebench curves`).
    static func parseCurves(_ t: TOMLReader) throws -> CurvesSettings? {
        var r = t
        let enabled = try r.bool("enabled") ?? true
        let d = CurvesSettings.standard
        typealias L = CurvesSettings.Limits
        var tb = try r.table("testbed") ?? TOMLReader(TOMLTable(), file: r.file, path: r.keyPath("testbed"))
        let any = Int.min...Int.max, real = { (_: Double) in true }
        let testbed = TestbedSettings(
            dim: try tb.int("dim", in: L.dim, "a dimension in \(L.dim)") ?? d.testbed.dim,
            components: try tb.int("components", in: L.components, "a component count in \(L.components)") ?? d.testbed.components,
            rank: try tb.int("rank", in: any, "an integer") ?? d.testbed.rank,
            isotropicStd: try tb.double("isotropic_std", real, "a number") ?? d.testbed.isotropicStd,
            seed: UInt64(try tb.int("seed", in: 0...Int.max, "a seed ≥ 0") ?? Int(d.testbed.seed)),
            sigmaMax: try tb.double("sigma_max", real, "a number"))
        try tb.finish(known: ["dim", "components", "rank", "isotropic_std", "seed", "sigma_max"])
        var out = CurvesSettings(
            score: try r.string("score") ?? d.score,
            integrators: try r.choiceArray("integrators", IntegratorKind.self) ?? d.integrators,
            nfe: try r.intArray("nfe", in: L.nfe, "an NFE budget in \(L.nfe)") ?? d.nfe,
            dlg: try r.choice("dlg", DLGMode.self) ?? d.dlg,
            samples: try r.int("samples", in: L.samples, "a sample count in \(L.samples)") ?? d.samples,
            seeds: try seeds(&r, "seeds") ?? d.seeds,
            testbed: testbed,
            models: try r.stringArray("models") ?? d.models,
            execution: try r.choice("execution", ExecutionMode.self) ?? d.execution,
            cfgScale: try r.double("cfg_scale", real, "a number"),
            chains: try r.int("chains", in: L.chains, "a chain count in \(L.chains)") ?? d.chains,
            dlgEps: try r.double("dlg_eps", real, "a number"),
            dlgSkipFraction: try r.double("dlg_skip_fraction", real, "a number"))
        out.decoder = try r.string("decoder"); out.vaeConfig = try r.string("vae_config"); out.fidRef = try r.string("fid_ref")
        out.inception = try r.string("inception"); out.kid = try r.bool("kid")
        try r.finish(known: ["enabled", "score", "integrators", "nfe", "dlg", "samples", "seeds", "testbed", "models",
                             "execution", "cfg_scale", "chains", "dlg_eps", "dlg_skip_fraction", "decoder", "vae_config",
                             "fid_ref", "inception", "kid"])
        if out.imageFID || out.kid == true {
            // The keys are CurvesSettings' (one definition with `moebench curves`), but a suite samples the bundled
            // digits models, which have no VAE: Inception FID of latent models runs from the command.
            throw r.error(.badValue, r.keyPath(out.decoder != nil ? "decoder" : out.fidRef != nil ? "fid_ref" : out.inception != nil ? "inception" : "kid"),
                          "not available in suites (they sample the bundled digits models); run latent models with `moebench curves --config … --weights … --decoder … --fid-ref … --inception …`")
        }
        do { try out.validate() } catch let p as CurvesSettings.Problem {
            throw r.error(.badValue, r.keyPath(p.key), "expected " + p.message)
        }
        return enabled ? out : nil
    }
}
