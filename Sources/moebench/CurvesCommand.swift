import ArgumentParser
import Foundation
import Diffusion
import Cluster
import DiT
import FID
import Harness
import Tensor
import Training
import Vision
import Wire

struct CurvesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curves",
        abstract: "NFE-versus-FD curves of six integrators with and without Denoising Langevin Gibbs (DMCMC Fig. 3).",
        discussion: """
        Runs every cell of integrators × NFE budgets × {vanilla, DLG} × seeds on a score source and measures the \
        Fréchet distance (FD) of each cell's samples to the source's reference moments. NFE is counted at the model \
        call (one batched call = 1 NFE per sample) and includes the final Tweedie step; DLG's warm-up is not counted.

        SCORE SOURCES
          testbed   A seeded mixture of low-rank Gaussians with an exact score (no network). FD is measured against \
        its exact mean and covariance. Units are image-like ([0,1]-pixel scale), so the DMCMC CIFAR10 constants \
        apply: σ_max 50, σ_min 0.01, τ 0.01, 1000 DLG levels; the σ-step uses the exact log p_σ(x).
          model     A trained DiT / DiT-MoE on the bundled digits (--config, --weights; in-process, or its experts \
        on a cluster with --hosts), driven through the VP ε adapter in [0,1] pixel units with the same constants. \
        Labels cycle over the 10 classes; --cfg-scale adds guidance. FD is in pixel space (64-d) against the 300 \
        held-out digits; the `floor` row (the finite-sample reference) is the training digits at the same sample count. Each cell's samples are \
        written to samples/<cell>.safetensors with a PNG grid. Each row also has FID-digits (the Fréchet distance of a \
        digit classifier's features, not Inception FID) with bootstrap intervals; DLG's σ-step uses the shipped \
        noise-level classifier.
          model with --decoder/--fid-ref/--inception   A latent DiT / DiT-MoE (e.g. --config DiT-MoE-S/2-8E2A \
        --weights …; in_channels 4). The sampler runs in the DiT's own units — SD-VAE latents times the scaling \
        factor 0.18215, about unit std — through the VP ε adapter: σ is the VE level of those units, from \
        σ_max = 157.4 (the DDPM linear table's σ_T, i.e. DDPM's x_T) down to σ_min = 0.01 (σ_0), Tweedie τ 0.01, no \
        clamp. Labels are (block·batch + row) mod num_classes. Each cell's latents are decoded by the VAE (÷ 0.18215 \
        inside), quantised to uint8 as DiT's sample_ddp.py does (clamp(127.5·x + 128, 0, 255), rounding), run \
        through pytorch-fid's Inception in batches of --fid-batch and streamed into float64 statistics; the row's \
        fd and fid are the FID against --fid-ref (kid and kid_std with --kid). No floor row, no bootstrap interval. \
        DLG is refused for latent models (--dlg defaults to off): its σ-step is the MAP level of a noise-level \
        classifier trained on noisy data, and none exists for ImageNet latents; a training-free substitute would \
        spend extra model calls per Langevin step and change the NFE budgets being compared. Budget for time: \
        decoding one 256² image takes about 12 s on this 2-core machine (docs/fid.md).

        BUDGETS
          Each budget maps to a method's own step parameter: KAR1/KAR2 use N = ⌊(b+2)/2⌋ grid points (NFE 2N−2, \
        so odd budgets round down); PF/RD/EM use N = b−1 steps; RK45 uses rtol = atol log-linear from 1e-1 at 10 NFE \
        to 1e-5 at 200 NFE (its NFE is set by error control and recorded as counted). With DLG, about \
        --dlg-skip-fraction of the budget goes to Langevin steps (n_skip), the rest to the integrator and the \
        Tweedie step: budget = n_skip + integrator NFE + 1.

        OUTPUT (in --out)
          curves.jsonl  one JSON object per finished cell (integrator, dlg, budget, nfe, step, n_skip, epsilon, fd, \
        samples, seed, chains, mean_start_sigma, warmup_nfe, seconds, source, fd_lower, fd_upper: a 95% bootstrap \
        interval over the cell's samples, never below 0) and one `floor` row per seed: the finite-sample reference, \
        FD of the same number of exact (or real) draws — what real data scores at that sample count, not a bound \
        a sampler cannot beat: a cell can land below it by chance.
          curves.csv    the same rows as CSV.
          curves.svg    one panel per integrator, NFE on x, FD on y, vanilla and DLG with 95% bootstrap intervals, \
        the best point of each labelled, and the finite-sample reference.
          summary.json  per (integrator, mode, budget): mean NFE, FD mean over seeds and its 95% bootstrap interval.
        An interrupted run resumes: cells whose row is already in curves.jsonl (same source, samples, chains, seed \
        and DLG settings) are skipped. Progress goes to stderr.

        EXAMPLES
          moebench curves
          moebench curves --integrators kar1,em --nfe 10,20,50 --seeds 3 --out /tmp/c
          moebench curves --dim 3072 --samples 1000 --chains 100 --dlg on
          moebench curves --score model --config DiT-MoE-S/2-8E2A \\
              --weights dit_moe_s_8E2A.safetensors \\
              --decoder sd-vae-ft-ema/diffusion_pytorch_model.safetensors \\
              --vae-config sd-vae-ft-ema/config.json \\
              --fid-ref VIRTUAL_imagenet256_labeled.npz \\
              --inception fid_inception.safetensors --integrators kar1,pf \\
              --nfe 20,50 --samples 1000 --chains 10 --out results/latent

        The settings and their defaults are those of a profile's [curves] (profiles/README.md): one definition.
        """)

    @Option(name: .long, help: "Score source: testbed (exact score) or model (a trained DiT on the digits).")
    var score: String = "testbed"

    @Option(name: .long, help: "--score model: digits-moe, digits-dense or a JSON config of a digits model.")
    var config: String = "digits-moe"

    @Option(name: .long, help: "--score model: weights (safetensors, upstream keys), e.g. the ema.safetensors of `moebench train`.")
    var weights: String?

    @Option(name: .customLong("cfg-scale"), help: "--score model: classifier-free guidance scale (default: none, conditional only).")
    var cfgScale: Float?

    @Option(help: "--score model: run the routed experts on the workers of this hosts file (`moebench cluster up` first).")
    var hosts: String?

    @Option(name: .customLong("secret-file"), help: "--score model with --hosts: the cluster's shared secret (default: next to the hosts file).")
    var secretFile: String?

    @Option(help: "--score model: worker threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp("Comma-separated integrators: kar1, kar2, pf, rk45, rd, em, or all.", valueName: "list"))
    var integrators: String = "all"

    @Option(name: .long, help: ArgumentHelp("Comma-separated NFE budgets per sample, each in 4…100000 (default 10,20,50,100).", valueName: "list"))
    var nfe: String?

    @Option(name: .long, help: ArgumentHelp("on (DLG only), off (vanilla only) or both (default both; off with --decoder).", valueName: "on|off|both"))
    var dlg: String?

    @Option(help: ArgumentHelp("--score model, latent model: the SD-VAE decoder weights (diffusers safetensors; the full AutoencoderKL file loads).", valueName: "file"))
    var decoder: String?

    @Option(name: .customLong("vae-config"), help: ArgumentHelp("The decoder's config: sd-vae-ft-ema, sd-vae-ft-mse or a diffusers config.json (default sd-vae-ft-ema).", valueName: "name|file"))
    var vaeConfig: String?

    @Option(name: .customLong("fid-ref"), help: ArgumentHelp("Latent model: FID reference, statistics .npz (mu, sigma) or reference images (see `moebench fid --help`).", valueName: "ref.npz|DIR"))
    var fidRef: String?

    @Option(help: ArgumentHelp("Latent model: pytorch-fid's Inception weights as safetensors (tools/convert_fid_inception.py).", valueName: "file"))
    var inception: String?

    @Flag(help: "Latent model: also compute KID per cell (needs reference features).")
    var kid = false

    @Option(name: .customLong("fid-batch"), help: "Latent model: images per VAE decode and Inception batch (about 205 MB per image at 256²).")
    var fidBatch: Int = 2

    @Option(name: .long, help: "Samples per cell that FD is computed from, 2…10000000 (default 1000).")
    var samples: Int?

    @Option(name: .long, help: "Number of seeds (0, 1, …), 1…1000; FD is reported as a mean with a 95% interval over seeds.")
    var seeds: Int = 1

    @Option(name: .long, help: "Batch size of vanilla runs = number of DLG chains, 1…100000, rounded down to a divisor of --samples (default 100).")
    var chains: Int?

    @Option(name: .long, help: "Output directory (created if missing).")
    var out: String = "results/curves"

    @Option(name: .customLong("dlg-eps"), help: "DLG Langevin step ε_main, a variance in data units², 1e-6…100 (default 0.5).")
    var dlgEps: Double?

    @Option(name: .customLong("dlg-skip-fraction"), help: "Share of a DLG budget spent on Langevin steps, 0.01…0.99 (default 0.3).")
    var dlgSkipFraction: Double?

    @Option(name: .long, help: "Testbed dimension d, 2…3072 (default 16).")
    var dim: Int?

    @Option(name: .long, help: "Testbed mixture components K, 1…4096 (default 4).")
    var components: Int?

    @Option(name: .long, help: "Testbed rank r of each component's subspace, 1…d (default 2).")
    var rank: Int?

    @Option(name: .customLong("isotropic-std"), help: "Testbed isotropic standard deviation (data units; default 0.05).")
    var isotropicStd: Double?

    @Option(name: .customLong("testbed-seed"), help: "Seed of the testbed's parameters (not of the samplers).")
    var testbedSeed: UInt64 = 0

    @Option(name: .customLong("sigma-max"), help: "σ_max of vanilla runs and of the DLG level set (data units), 0.05…10000 (default 50).")
    var sigmaMax: Double?

    @Option(name: .customLong("blas-threads"), help: "OpenBLAS threads, 1…256. The testbed splits each batch over 2 cores itself and its GEMMs are small, so 1 is fastest.")
    var blasThreads: Int = 1

    @Flag(name: .long, help: "Print the summary as JSON on stdout instead of the table.")
    var json = false

    /// The flags as the one settings type that `[curves]` also fills; every range is checked there.
    func settings() throws -> CurvesSettings {
        var c = CurvesSettings.standard
        c.score = score
        c.integrators = try parseIntegrators(integrators)
        if let nfe {
            c.nfe = try nfe.split(separator: ",").map {
                guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--nfe: '\($0)' is not an integer") }
                return v
            }
        }
        let imageFID = decoder != nil || fidRef != nil || inception != nil
        let dlg = self.dlg ?? (imageFID ? "off" : "both")
        guard let mode = DLGMode(rawValue: dlg) else { throw ValidationError("--dlg must be on, off or both, got '\(dlg)'") }
        c.dlg = mode
        c.samples = samples ?? c.samples
        guard CurvesSettings.Limits.seeds.contains(seeds) else { throw ValidationError("--seeds must be in 1…\(CurvesSettings.Limits.seeds.upperBound), got \(seeds)") }
        c.seeds = (0..<UInt64(seeds)).map { $0 }
        c.chains = chains ?? c.chains
        c.dlgEps = dlgEps
        c.dlgSkipFraction = dlgSkipFraction
        c.cfgScale = cfgScale.map(Double.init)
        c.models = score == "model" ? [config] : []
        c.testbed.dim = dim ?? c.testbed.dim
        c.testbed.components = components ?? c.testbed.components
        c.testbed.rank = rank ?? min(c.testbed.rank, c.testbed.dim)
        c.testbed.isotropicStd = isotropicStd ?? c.testbed.isotropicStd
        c.testbed.seed = testbedSeed
        c.testbed.sigmaMax = sigmaMax
        c.decoder = decoder; c.vaeConfig = vaeConfig; c.fidRef = fidRef; c.inception = inception; c.kid = kid ? true : nil
        do { try c.validate() } catch let p as CurvesSettings.Problem { throw ValidationError("\(p.flag): expected \(p.message)") }
        return c
    }

    func validate() throws {
        if score == "model" && weights == nil { throw ValidationError("--score model needs --weights (a trained checkpoint, e.g. from `moebench train`)") }
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be between 1 and 256, got \(threads)") }
        guard (1...64).contains(fidBatch) else { throw ValidationError("--fid-batch must be in 1…64, got \(fidBatch)") }
        guard (1...256).contains(blasThreads) else { throw ValidationError("--blas-threads must be between 1 and 256, got \(blasThreads)") }
        _ = try settings()
    }

    func run() throws {
        let settings = try settings()
        let config = settings.sweepConfig(chains: settings.chains)
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        let samples = settings.samples, seeds = settings.seeds.count, chains = config.chains

        BLASThreads.set(blasThreads)
        let source: CurveScoreSource
        let title: String
        let log0: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        var latent: LatentScoreSource?
        if settings.imageFID {
            let model = try loadModel(latent: true)
            let vae = try loadDecoder(latentSide: model.config.inputSize)
            let extractor = try FIDFeatureExtractor(path: inception!, maxBatch: fidBatch)
            let builder = FIDStatisticsBuilder(extractor: extractor, cache: FIDStatsCache(directory: FIDStatsCache.defaultDirectory()))
            builder.log = log0
            builder.progress = FIDCommand.progressPrinter(log0)
            let reference = try FIDReference.load(fidRef!, builder: builder, needFeatures: kid)
            let s = try LatentScoreSource(model: model, name: model.config.name, cfgScale: cfgScale, batch: chains, decoder: vae,
                                          decoderIdentity: "sha256:" + FIDFeatureExtractor.fileDigest(path: decoder!),
                                          extractor: extractor, reference: reference,
                                          referenceName: (fidRef! as NSString).lastPathComponent, kid: kid)
            s.log = log0
            latent = s
            source = s
            title = "NFE vs Inception FID of \(model.config.name) — \(samples) samples, \(seeds) seed(s)"
        } else if score == "model" {
            let model = try loadModel(latent: false)
            let (train, heldOut) = try DigitsDataset.bundled().split()
            func unit(_ d: DigitsDataset) -> [Float] { d.pixels.map { ($0 + 1) / 2 } }
            let (estimator, fid) = try ModelScoreSource.bundledInstruments()
            source = ModelScoreSource(model: model, name: model.config.name, cfgScale: cfgScale, batch: chains,
                                      heldOut: unit(heldOut), train: unit(train), levelEstimator: estimator, fid: fid)
            title = "NFE vs FD (pixels) of \(model.config.name) on the UCI digits — \(samples) samples, \(seeds) seed(s)"
        } else {
            let spec = settings.testbedSpec
            source = TestbedScoreSource(spec: spec, sigmaMax: settings.testbed.sigmaMax ?? 50)
            title = "NFE vs FD on \(spec.label) — \(samples) samples, \(seeds) seed(s)"
        }
        let store = try CurveStore(directory: out)
        let stderr = FileHandle.standardError
        let log: (String) -> Void = { stderr.write(Data(($0 + "\n").utf8)) }
        log("curves: \(source.label); \(config.integrators.count) integrator(s) × \(config.budgets.count) budget(s) × "
            + "\(config.dlgModes.count) mode(s) × \(config.seeds.count) seed(s), \(samples) samples per cell → \(out)")
        let t0 = Date()
        let sweep = try CurveSweep(source: source, config: config, store: store, progress: log)
        if latent != nil { log("curves: latent model: vanilla cells only; fd = fid = Inception FID against \(fidRef!)") }
        if source is ModelScoreSource { sweep.onCellSamples = { row, samples in try CellSamples.write(row: row, samples: samples, side: 8, directory: out) } }
        let rows = try sweep.run()
        let summary = CurveSummary(rows: rows)
        try summary.figure(title: title).write(to: out + "/curves.svg")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(summary)
        try data.write(to: URL(fileURLWithPath: out + "/summary.json"))
        log(String(format: "curves: done in %.1f s; wrote %@/curves.jsonl, curves.csv, curves.svg, summary.json",
                   Date().timeIntervalSince(t0), out))
        if json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(summary.table())
        }
    }

    /// The SD-VAE decoder of --decoder/--vae-config for latents of `latentSide`², errors naming the file.
    private func loadDecoder(latentSide: Int) throws -> VAEDecoder {
        let path = decoder!
        guard FileManager.default.fileExists(atPath: path) else { throw RuntimeError("\(path): no such file (--decoder: the SD-VAE decoder's safetensors, docs/fid.md)") }
        do {
            let config = try VAEConfig.named(vaeConfig ?? "sd-vae-ft-ema")
            let weights = try VAEDecoderWeights(file: SafetensorsFile(path: path), config: config)
            return VAEDecoder(weights: weights, latentHeight: latentSide, latentWidth: latentSide, maxBatch: fidBatch)
        } catch let e as DiTError {
            throw RuntimeError(e.description)
        }
    }

    /// The DiT of --score model, with its experts on the cluster when --hosts is given; a digits model, or with
    /// `latent` a latent model (in_channels 4).
    private func loadModel(latent: Bool) throws -> DiTModel {
        EngineThreads.configure(threads)
        do {
            let cfg = try DiTConfig.resolve(config)
            if latent {
                guard cfg.inChannels == 4 else {
                    throw RuntimeError("--config \(config): --decoder/--fid-ref/--inception score a latent model (in_channels 4, e.g. DiT-MoE-S/2-8E2A); got in_channels \(cfg.inChannels)")
                }
            } else if !(cfg.inputSize == 8 && cfg.inChannels == 1 && cfg.numClasses == 10) {
                throw RuntimeError("--config \(config): --score model samples the digits (input_size 8, in_channels 1, num_classes 10); got input_size \(cfg.inputSize), in_channels \(cfg.inChannels), num_classes \(cfg.numClasses)")
            }
            let model = try DiTModel(config: cfg, source: .safetensors(path: weights!))
            if let hosts {
                guard cfg.isMoE else { throw RuntimeError("--hosts needs a MoE model; \(cfg.name) is dense") }
                model.executor = try ClusterRuntime.executor(hostsPath: hosts, secretPath: secretFile, weights: model.weights,
                                                             codec: ShardOptions(parsing: "f32+shuffle+auto")!)
            }
            return model
        } catch let e as DiTError {
            throw RuntimeError(e.description)
        } catch let e as ClusterError {
            throw RuntimeError("\(e)")
        }
    }

    private func parseIntegrators(_ s: String) throws -> [IntegratorKind] {
        if s == "all" { return IntegratorKind.allCases }
        return try s.split(separator: ",").map {
            let name = $0.trimmingCharacters(in: .whitespaces).lowercased()
            guard let k = IntegratorKind(rawValue: name) else {
                throw ValidationError("--integrators: unknown '\(name)'; expected kar1, kar2, pf, rk45, rd, em or all")
            }
            return k
        }
    }
}
