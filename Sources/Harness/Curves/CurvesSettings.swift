// The one definition of an NFE–FD sweep's settings: `moebench curves` (flags) and a profile's `[curves]` (keys)
// both build a CurvesSettings from `CurvesSettings.standard`, check it with `validate()` against `Limits`, and
// turn it into a CurveSweepConfig with `sweepConfig`. A flag's name is its key's with '_' → '-' ("--dlg-eps"
// for `dlg_eps`; the testbed's keys drop their "testbed." prefix: "--dim").
import Diffusion
import Foundation

public struct TestbedSettings: Codable, Equatable, Sendable {
    /// Data dimension d.
    public var dim: Int
    /// Mixture components.
    public var components: Int
    /// Rank of each component's low-rank covariance part.
    public var rank: Int
    /// Standard deviation of the isotropic part (data units).
    public var isotropicStd: Double
    /// Seed of the mixture's parameters (not of the samplers).
    public var seed: UInt64
    /// σ_max of vanilla runs and of the DLG level set (data units); nil: 50, DMCMC's CIFAR10 value.
    public var sigmaMax: Double?
}

public struct CurvesSettings: Codable, Equatable, Sendable {
    /// Score source: "testbed" (exact score) or "model" (trained digits models, with the testbed as a second panel).
    public var score: String
    public var integrators: [IntegratorKind]
    /// NFE budgets (each mapped to the method's own step parameter; rows record the NFE actually counted).
    public var nfe: [Int]
    public var dlg: DLGMode
    /// Samples per cell for the Fréchet distance.
    public var samples: Int
    public var seeds: [UInt64]
    public var testbed: TestbedSettings
    /// score = "model": model ids sampled, drawn on one NFE–FD figure (e.g. the MoE and its dense twin).
    public var models: [String] = []
    /// score = "model": where the MoE models' routed experts run.
    public var execution: ExecutionMode = .inProcess
    /// score = "model": classifier-free guidance scale (nil: conditional only).
    public var cfgScale: Double?
    /// Batch of vanilla runs and number of DLG chains. The testbed panel of a suite uses at most samples/20 chains
    /// so that DLG's one-off warm-up is amortised over ≥ 20 draws per chain.
    public var chains: Int = 100
    /// DLG's Langevin step ε_main (a variance, data units²); nil: 0.5.
    public var dlgEps: Double?
    /// Share of a DLG budget spent on Langevin steps, in (0, 1); nil: 0.3.
    public var dlgSkipFraction: Double?
    /// score = "model" with a latent model (in_channels 4): Inception FID per cell. The SD-VAE decoder weights
    /// (diffusers safetensors), its config (a built-in name or a diffusers config.json; nil: sd-vae-ft-ema), the
    /// reference statistics (.npz with mu/sigma, or an image set), pytorch-fid's Inception weights, and KID.
    public var decoder: String?
    public var vaeConfig: String?
    public var fidRef: String?
    public var inception: String?
    public var kid: Bool?

    /// True when the rows carry Inception FID of decoded latents.
    public var imageFID: Bool { decoder != nil || fidRef != nil || inception != nil }

    /// The defaults of both `moebench curves` and `[curves]` (about 1 min for the testbed on 2 cores).
    public static let standard = CurvesSettings(
        score: "testbed", integrators: IntegratorKind.allCases, nfe: [10, 20, 50, 100], dlg: .both, samples: 1000,
        seeds: [0], testbed: TestbedSettings(dim: 16, components: 4, rank: 2, isotropicStd: 0.05, seed: 0, sigmaMax: nil))

    /// Inclusive ranges of every numeric setting.
    public enum Limits {
        public static let nfe = 4...100_000
        public static let samples = 2...10_000_000
        public static let seeds = 1...1000
        public static let chains = 1...100_000
        public static let dim = 2...3072
        public static let components = 1...4096
        public static let cfgScale = 0.0...100.0
        public static let dlgEps = 1e-6...100.0
        public static let dlgSkipFraction = 0.01...0.99
        public static let isotropicStd = 1e-6...1e3
        public static let sigmaMax = 0.05...1e4
    }

    /// A setting that breaks its rule: `key` as in the profile (`nfe`, `testbed.dim`), and what was expected.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public var key: String
        public var message: String
        /// The command-line flag of `key`.
        public var flag: String { "--" + (key.hasPrefix("testbed.") ? String(key.dropFirst(8)) : key).replacingOccurrences(of: "_", with: "-") }
        public var description: String { "\(key): \(message)" }
    }

    /// Every rule, in one place; the first problem found.
    public func validate() throws {
        func need(_ ok: Bool, _ key: String, _ message: @autoclosure () -> String) throws {
            if !ok { throw Problem(key: key, message: message()) }
        }
        func show<T: Comparable>(_ r: ClosedRange<T>) -> String { "\(r.lowerBound)…\(r.upperBound)" }
        try need(score == "testbed" || score == "model", "score", "expected \"testbed\" or \"model\", found \"\(score)\"")
        try need(!integrators.isEmpty, "integrators", "no integrator selected")
        try need(!nfe.isEmpty && nfe.allSatisfy(Limits.nfe.contains), "nfe", "NFE budgets in \(show(Limits.nfe)), found \(nfe)")
        try need(Limits.samples.contains(samples), "samples", "a sample count in \(show(Limits.samples)), found \(samples)")
        try need(Limits.seeds.contains(seeds.count), "seeds", "1 to \(Limits.seeds.upperBound) seeds, found \(seeds.count)")
        try need(Limits.chains.contains(chains), "chains", "a chain count in \(show(Limits.chains)), found \(chains)")
        try need(score != "model" || !models.isEmpty, "models", "score = \"model\" needs models = [\"<model id>\", …]")
        try need(cfgScale.map { $0.isFinite && Limits.cfgScale.contains($0) } ?? true, "cfg_scale", "a guidance scale in \(show(Limits.cfgScale))")
        try need(dlgEps.map { $0.isFinite && Limits.dlgEps.contains($0) } ?? true, "dlg_eps", "a Langevin step in \(show(Limits.dlgEps)) (data units²)")
        try need(dlgSkipFraction.map { Limits.dlgSkipFraction.contains($0) } ?? true, "dlg_skip_fraction", "a share in \(show(Limits.dlgSkipFraction))")
        if imageFID {
            try need(score == "model", "score", "\"model\" (decoder, fid_ref and inception score a latent model's samples)")
            try need(decoder != nil, "decoder", "the VAE decoder's safetensors file (with fid_ref and inception)")
            try need(fidRef != nil, "fid_ref", "reference statistics (.npz with mu/sigma) or reference images (with decoder and inception)")
            try need(inception != nil, "inception", "pytorch-fid's Inception weights as safetensors (tools/convert_fid_inception.py)")
            try need(dlg == .off, "dlg", "\"off\": DLG's σ-step needs a noise-level classifier, and none exists for ImageNet latents (latent models run vanilla cells only)")
        }
        try need(kid != true || imageFID, "kid", "decoder, fid_ref and inception as well (KID is computed on Inception features)")
        let t = testbed
        try need(Limits.dim.contains(t.dim), "testbed.dim", "a dimension in \(show(Limits.dim)), found \(t.dim)")
        try need(Limits.components.contains(t.components), "testbed.components", "a component count in \(show(Limits.components)), found \(t.components)")
        try need((1...t.dim).contains(t.rank), "testbed.rank", "a rank in 1…dim (\(t.dim)), found \(t.rank)")
        try need(t.isotropicStd.isFinite && Limits.isotropicStd.contains(t.isotropicStd), "testbed.isotropic_std", "a standard deviation in \(show(Limits.isotropicStd))")
        try need(t.sigmaMax.map { $0.isFinite && Limits.sigmaMax.contains($0) } ?? true, "testbed.sigma_max", "a σ_max in \(show(Limits.sigmaMax))")
    }

    /// The sweep of these settings with `chains` chains: the largest divisor of `samples` not above it.
    public func sweepConfig(chains: Int) -> CurveSweepConfig {
        var config = CurveSweepConfig()
        config.integrators = integrators
        config.budgets = nfe
        config.dlgModes = dlg == .on ? [true] : dlg == .off ? [false] : [false, true]
        config.samples = samples
        config.seeds = seeds.map { Int($0) }
        config.chains = (1...max(1, min(chains, samples))).last { samples % $0 == 0 } ?? 1
        config.dlg = DLGBudgetDefaults(epsilon: dlgEps ?? DLGBudgetDefaults().epsilon,
                                       skipFraction: dlgSkipFraction ?? DLGBudgetDefaults().skipFraction)
        return config
    }

    /// The testbed's mixture.
    public var testbedSpec: LowRankMixtureSpec {
        LowRankMixtureSpec(dimension: testbed.dim, components: testbed.components, rank: testbed.rank,
                           isotropicStd: testbed.isotropicStd, seed: testbed.seed)
    }
}
