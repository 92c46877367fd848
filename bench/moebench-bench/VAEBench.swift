import ArgumentParser
import DiT
import Foundation
import Metrics
import Tensor
import Vision

/// SD-VAE decoder and FID Inception throughput (the FID path after sampling) per GEMM backend × precision, against
/// the physical peak of that precision measured in the same run; optionally the DiT forward beside them and the wall
/// time of an FID-10K point.
struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "SD-VAE decoder and FID Inception images/s and GFLOP/s per GEMM backend and precision, against the physical peak; --fid10k adds the DiT forward and an FID-10K wall-time estimate.",
        discussion: """
        Decodes random latents with the sd-vae-ft-mse decoder shape (block_out_channels 128/256/512/512, 3 resnets
        per up block) on seeded random weights (only the shapes matter for speed), then runs pytorch-fid's
        Inception-v3 up to pool3 on the decoded uint8 images (resized to 299²). Prints the physical FP32 and BF16
        peaks (CPeak, register-only) and the load average, then per network × backend × precision the median
        seconds per image over --iterations (after one warm-up; configurations alternate run by run), images/s,
        true GFLOP/s (2 × the multiply-adds of the convolutions and the attention matmuls; norms, SiLU, softmax,
        pools and upsampling are not counted), that rate as a fraction of the same-run peak of its precision on all
        worker threads, and the process CPU seconds per image with GFLOP per CPU second (on a shared machine the
        wall-clock rate measures the share the scheduler gave; the per-CPU-second rate is the kernels' own speed,
        comparable to one core's peak).
        BF16: convolution GEMMs take BF16 inputs (weights rounded once at load, im2col columns rounded as written)
        with FP32 accumulation; everything else is FP32. It needs --gemm onednn.
        --fid10k also times DiT-MoE-S/2-8E2A forwards (classifier-free guidance: a forward of 2·--dit-batch
        latents per step for --dit-batch images) and prints the wall time of 10,000 images per --nfe:
        10,000 × (NFE × forward time per image + decode + Inception), each at its measured median.
        """)

    @Option(help: "Latent side (32 for 256² images).")
    var latent: Int = 32

    @Option(help: "Images per decode / Inception call.")
    var batch: Int = 1

    @Option(parsing: .upToNextOption, help: "GEMM backends: openblas, onednn.")
    var gemm: [String] = ["openblas", "onednn"]

    @Option(parsing: .upToNextOption, help: "Precisions: fp32, bf16 (bf16 runs on onednn only; default both when oneDNN is there).")
    var precision: [String] = ["fp32", "bf16"]

    @Option(help: "Timed calls per configuration; the median is reported.")
    var iterations: Int = 3

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(help: "Per-worker im2col scratch of the decoder, Mi floats (bigger bands, fewer GEMMs).")
    var scratchMiFloats: Int = 1

    @Option(parsing: .upToNextOption, help: "Decoder activation layouts: nhwc (channels-last, packed-weight GEMMs; the default), nchw (the previous conv2d path, to compare).")
    var layout: [String] = ["nhwc"]

    @Flag(inversion: .prefixedNo, help: "Also time the FID Inception (pool3 features) on the decoded images.")
    var inception = true

    @Flag(help: "Also time the DiT-MoE-S/2-8E2A forward and print the FID-10K wall-time estimate per --nfe.")
    var fid10k = false

    @Option(help: "--fid10k: images per sampling batch (the DiT forward runs on twice this with classifier-free guidance).")
    var ditBatch: Int = 8

    @Option(parsing: .upToNextOption, help: "--fid10k: network evaluations per image (sampler steps × evaluations per step).")
    var nfe: [Int] = [50, 250]

    @Flag(inversion: .prefixedNo, help: "--fid10k: classifier-free guidance (each evaluation is a forward of the cond and uncond halves).")
    var cfg = true

    @Flag(help: "Print JSON lines instead of the tables.")
    var json = false

    func validate() throws {
        guard (1...256).contains(latent) else { throw ValidationError("--latent must be in 1...256, got \(latent)") }
        guard (1...64).contains(batch) else { throw ValidationError("--batch must be in 1...64, got \(batch)") }
        guard (1...1000).contains(iterations) else { throw ValidationError("--iterations must be in 1...1000, got \(iterations)") }
        guard threads == nil || (1...256).contains(threads!) else { throw ValidationError("--threads must be in 1...256") }
        guard (1...1024).contains(scratchMiFloats) else { throw ValidationError("--scratch-mi-floats must be in 1...1024") }
        guard (1...512).contains(ditBatch) else { throw ValidationError("--dit-batch must be in 1...512, got \(ditBatch)") }
        guard !nfe.isEmpty, nfe.allSatisfy({ $0 > 0 }) else { throw ValidationError("--nfe must be positive, got \(nfe)") }
    }

    struct Setup: Hashable {
        let backend: GEMMBackend
        let precision: ComputePrecision
        var layout: VAEDecoder.Layout = .channelsLast
    }

    /// Wall and process CPU seconds of one call.
    struct Timing { var wall: Double; var cpu: Double }

    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    static func time(_ body: () throws -> Void) rethrows -> Timing {
        let c0 = cpuSeconds(), t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Timing(wall: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, cpu: cpuSeconds() - c0)
    }

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let backends = try gemm.map { try GEMMBackend.parse($0) }
        let precisions = try precision.map { text -> ComputePrecision in
            guard let p = ComputePrecision(rawValue: text.lowercased()) else { throw ValidationError("--precision: expected fp32 or bf16, got '\(text)'") }
            return p
        }
        var setups: [Setup] = []
        for p in precisions { for b in backends where p == .fp32 || b == .onednn { setups.append(Setup(backend: b, precision: p)) } }
        guard !setups.isEmpty else { throw ValidationError("--gemm/--precision: no runnable combination (bf16 needs onednn)") }

        let cpus = min(Parallel.threads, PhysicalPeak.cpuCount)
        let peaks = MachinePeaks.measure(repeats: 3, allThreads: cpus)
        let load = Self.loadAverage()
        if json {
            for r in peaks.results {
                JSONLines.print(PeakRow(precision: r.precision.rawValue, threads: r.threads, bestGflops: r.best, medianGflops: r.median, supported: true))
            }
        } else {
            peaks.printHeader()
            if DNNL.isAvailable {
                print("oneDNN \(DNNL.version): matmul FP32 \(DNNL.implementation(.fp32)), BF16 \(DNNL.implementation(.bf16)); "
                      + "single-threaded primitives, one per engine worker")
            }
            print("load average (1/5/15 min) before: \(load); \(Parallel.threads) worker(s)")
        }

        // Decoder: one instance per configuration (weights packed for its backend and precision), shared parameters.
        let weights = VAEDecoderWeights(config: .sdVAE, seed: 1)
        let layouts = try layout.map { text -> VAEDecoder.Layout in
            guard let l = VAEDecoder.Layout(rawValue: text.lowercased()) else { throw ValidationError("--layout: expected nhwc or nchw, got '\(text)'") }
            return l
        }
        var decoders: [(Setup, VAEDecoder)] = []
        for l in layouts {
            for s in setups {
                GEMMBackend.current = s.backend
                decoders.append((Setup(backend: s.backend, precision: s.precision, layout: l),
                                 VAEDecoder(weights: weights, latentHeight: latent, latentWidth: latent, maxBatch: batch,
                                            convScratchFloats: (l == .nchw ? 2 * scratchMiFloats : scratchMiFloats) << 20,
                                            precision: s.precision, layout: l)))
            }
        }
        let dec0 = decoders[0].1
        var rng = SplitMix64(seed: 3)
        let z = FloatBuffer((0..<(batch * 4 * latent * latent)).map { _ in 0.18215 * (2 * rng.nextUnitFloat() - 1) })
        let out = FloatBuffer(count: batch * dec0.imageCount)
        let decodeGFLOP = dec0.flopsPerImage / 1e9
        if !json {
            print(String(format: "sd-vae decoder, %d² latent → %d² image, batch %d: %.1f GFLOP per image, %.1f M parameters",
                         latent, dec0.outHeight, batch, decodeGFLOP, Double(weights.parameterCount) / 1e6))
        }
        let decodeTimes = measure(decoders) { d in
            d.decode(latents: z.pointer, batch: batch, scalingFactor: 0.18215, into: out.pointer)
        }
        var rows: [VisionRow] = []
        for (s, _) in decoders {
            rows.append(row(s.layout == .nchw ? "sd-vae decoder (nchw)" : "sd-vae decoder", s, decodeTimes[s]!, gflopPerImage: decodeGFLOP,
                            peaks: peaks, cpus: cpus))
        }

        if inception || fid10k {
            // FID Inception on the decoded images (pixels by the sample_ddp rule), deterministic random weights.
            let iw = FIDInceptionWeights(seed: 2)
            var nets: [(Setup, FIDInception)] = []
            for s in setups {
                GEMMBackend.current = s.backend
                nets.append((s, FIDInception(weights: iw, imageHeight: dec0.outHeight, imageWidth: dec0.outWidth, maxBatch: batch,
                                             precision: s.precision)))
            }
            let pixels = TypedBuffer<UInt8>(count: batch * dec0.imageCount, repeating: 0)
            PixelQuantisation.roundHalfUp.quantise(out.pointer, count: batch * dec0.imageCount, into: pixels.pointer)
            let feats = FloatBuffer(count: batch * FIDInception.featureCount)
            let igflop = nets[0].1.flopsPerImage / 1e9
            if !json {
                print(String(format: "FID Inception (pytorch-fid, resize %d² → 299²), batch %d: %.2f GFLOP per image", dec0.outHeight, batch, igflop))
            }
            let itimes = measure(nets) { net in net.features(pixels: pixels.pointer, batch: batch, into: feats.pointer) }
            for (s, _) in nets { rows.append(row("fid inception", s, itimes[s]!, gflopPerImage: igflop, peaks: peaks, cpus: cpus)) }
        }

        if fid10k {
            // DiT-MoE-S/2-8E2A forward at 2·ditBatch (CFG) or ditBatch latents, one instance per configuration.
            let config = try DiTConfig.named("DiT-MoE-S/2-8E2A")
            GEMMBackend.current = .openblas
            let stored = try DiTWeights(config: config, source: .random(seed: 1))
            var models: [(Setup, DiTModel)] = []
            for s in setups {
                GEMMBackend.current = s.backend
                models.append((s, try DiTModel(weights: DiTWeights(sharing: stored, precision: s.precision))))
            }
            let fb = cfg ? 2 * ditBatch : ditBatch
            let image = config.inChannels * config.inputSize * config.inputSize
            var r2 = SplitMix64(seed: 7)
            let x = FloatBuffer((0..<(fb * image)).map { _ in 2 * r2.nextUnitFloat() - 1 })
            let t = FloatBuffer([Float](repeating: 500, count: fb))
            let y = TypedBuffer<Int32>(count: fb, repeating: 0)
            for b in 0..<fb { y.pointer[b] = Int32(b * 97 % config.numClasses) }
            let eps = FloatBuffer(count: fb * config.outChannels * config.inputSize * config.inputSize)
            let dtimes = measure(models) { m in try! m.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: fb, out: eps.pointer) }
            let ditGFLOP = ModelCost(ModelShape(config)).trueFLOPs * Double(fb) / 1e9
            for (s, _) in models {
                // Per generated image: the forward's share (fb latents serve ditBatch images).
                rows.append(row("DiT-MoE-S/2-8E2A forward", s, dtimes[s]!, gflopPerImage: ditGFLOP / Double(ditBatch), peaks: peaks,
                                cpus: cpus, imagesPerCall: ditBatch, batchOverride: fb))
            }
        }

        if json {
            for r in rows { JSONLines.print(r) }
        } else {
            print("network                    backend   precision  batch    s/image   images/s   GFLOP/s   of peak   CPU s/image   GFLOP/CPU-s")
            for r in rows {
                print(r.network.padding(toLength: 26, withPad: " ", startingAt: 0) + " "
                      + r.gemm.padding(toLength: 9, withPad: " ", startingAt: 0) + " "
                      + r.precision.padding(toLength: 9, withPad: " ", startingAt: 0)
                      + String(format: " %6d  %9.4f  %9.3f  %8.1f   ", r.batch, r.secondsPerImage, r.imagesPerSecond, r.gflops)
                      + (r.fractionOfPeak.map { String(format: "%6.1f%%", 100 * $0) } ?? "   n/a")
                      + String(format: "   %11.3f   %11.1f", r.cpuSecondsPerImage, r.gflopsPerCpuSecond))
            }
        }

        if fid10k {
            // FID-10K wall time per configuration and NFE from the medians above.
            var estimates: [FID10KRow] = []
            for s in setups {
                func find(_ name: String) -> VisionRow? { rows.first { $0.network == name && $0.gemm == s.backend.rawValue && $0.precision == s.precision.rawValue } }
                guard let fwd = find("DiT-MoE-S/2-8E2A forward"), let dec = find("sd-vae decoder"), let inc = find("fid inception") else { continue }
                for n in nfe {
                    let sample = Double(n) * fwd.secondsPerImage
                    let total = 10_000 * (sample + dec.secondsPerImage + inc.secondsPerImage)
                    // Dedicated machine: CPU seconds spread over the workers (assumes perfect scaling, not measured).
                    let cpu = 10_000 * (Double(n) * fwd.cpuSecondsPerImage + dec.cpuSecondsPerImage + inc.cpuSecondsPerImage)
                    estimates.append(FID10KRow(fid10k: "DiT-MoE-S/2-8E2A", gemm: s.backend.rawValue, precision: s.precision.rawValue, nfe: n,
                                               cfg: cfg, ditBatch: ditBatch, samplingHours: 10_000 * sample / 3600,
                                               decodeHours: 10_000 * dec.secondsPerImage / 3600,
                                               inceptionHours: 10_000 * inc.secondsPerImage / 3600, totalHours: total / 3600,
                                               cpuBoundTotalHours: cpu / Double(Parallel.threads) / 3600))
                }
            }
            if json {
                for e in estimates { JSONLines.print(e) }
            } else {
                print("FID-10K point, DiT-MoE-S/2-8E2A (\(Self.ditLatent)² latents), decoder at \(latent)² latents"
                      + (latent == Self.ditLatent ? "" : " (not the DiT's size: use --latent \(Self.ditLatent) for a real estimate)")
                      + ": 10,000 × (NFE × DiT forward per image + decode + Inception), "
                      + "forward on \(cfg ? 2 * ditBatch : ditBatch) latents per \(ditBatch) images\(cfg ? " (CFG doubling)" : ""), "
                      + "each at this run's median wall time; the FD statistics themselves are negligible:")
                print("(\"CPU-bound\": the same from CPU seconds per image ÷ \(Parallel.threads) worker(s), i.e. this machine to itself with "
                      + "perfect scaling over the workers — an assumption, not a measurement)")
                print("backend   precision    NFE   sampling h   decode h   Inception h    total h   (days)   CPU-bound total h")
                for e in estimates {
                    print(e.gemm.padding(toLength: 9, withPad: " ", startingAt: 0) + " " + e.precision.padding(toLength: 9, withPad: " ", startingAt: 0)
                          + String(format: " %6d   %10.1f   %8.1f   %11.2f   %8.1f   (%.1f)   %17.1f", e.nfe, e.samplingHours, e.decodeHours,
                                   e.inceptionHours, e.totalHours, e.totalHours / 24, e.cpuBoundTotalHours))
                }
            }
        }
        if !json { print("load average after: \(Self.loadAverage())") }
    }

    /// Median timings per configuration: one warm-up each, then `iterations` rounds alternating configurations.
    func measure<T>(_ items: [(Setup, T)], _ body: (T) throws -> Void) rethrows -> [Setup: [Timing]] {
        for (s, item) in items { GEMMBackend.current = s.backend; try body(item) }
        var times: [Setup: [Timing]] = [:]
        for _ in 0..<iterations {
            for (s, item) in items {
                GEMMBackend.current = s.backend
                times[s, default: []].append(try Self.time { try body(item) })
            }
        }
        return times
    }

    func row(_ network: String, _ s: Setup, _ t: [Timing], gflopPerImage: Double, peaks: MachinePeaks, cpus: Int,
             imagesPerCall: Int? = nil, batchOverride: Int? = nil) -> VisionRow {
        let images = Double(imagesPerCall ?? batch)
        let wall = median(t.map(\.wall)) / images, cpu = median(t.map(\.cpu)) / images
        let rate = gflopPerImage / wall
        let peak = peaks.best(s.precision == .bf16 ? .bf16 : .fp32, threads: cpus)
        return VisionRow(network: network, latent: latent, batch: batchOverride ?? batch, gemm: s.backend.rawValue,
                         precision: s.precision.rawValue, threads: Parallel.threads, secondsPerImage: wall,
                         imagesPerSecond: 1 / wall, gflopPerImage: gflopPerImage, gflops: rate,
                         fractionOfPeak: peak.map { rate / $0 }, cpuSecondsPerImage: cpu, gflopsPerCpuSecond: gflopPerImage / cpu)
    }

    /// DiT-MoE-S/2-8E2A's latent side (256² images).
    static let ditLatent = 32

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }
}

/// One `vae --json` line: a network × backend × precision, medians over the timed calls. `batch` is the images (or,
/// for the DiT forward, latents) per call; per-image figures divide by the images a call serves.
struct VisionRow: Encodable {
    var network: String
    var latent: Int
    var batch: Int
    var gemm: String
    var precision: String
    var threads: Int
    var secondsPerImage: Double
    var imagesPerSecond: Double
    var gflopPerImage: Double
    var gflops: Double
    var fractionOfPeak: Double?
    var cpuSecondsPerImage: Double
    var gflopsPerCpuSecond: Double
}

/// One `vae --fid10k --json` estimate: 10,000 images at `nfe` network evaluations each.
struct FID10KRow: Encodable {
    var fid10k: String
    var gemm: String
    var precision: String
    var nfe: Int
    var cfg: Bool
    var ditBatch: Int
    var samplingHours: Double
    var decodeHours: Double
    var inceptionHours: Double
    var totalHours: Double
    /// From CPU seconds per image ÷ workers (a dedicated machine with perfect scaling over the workers; assumed).
    var cpuBoundTotalHours: Double
}
