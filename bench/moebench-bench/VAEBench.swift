import ArgumentParser
import Foundation
import Metrics
import Tensor
import Vision

/// SD-VAE decoder throughput (the FID path's decode step) per GEMM backend, against the physical FP32 peak measured
/// in the same run.
struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "SD-VAE decoder (and, with --inception, FID Inception) images/s and GFLOP/s per GEMM backend, against the physical FP32 peak.",
        discussion: """
        Decodes random latents with the sd-vae-ft-mse decoder shape (block_out_channels 128/256/512/512, 3 resnets
        per up block) on seeded random weights: only the shapes matter for speed. Prints the physical FP32 peak
        (CPeak, register-only) and the load average, then per backend the median seconds per decode over
        --iterations (after one warm-up; backends alternate run by run), images/s, GFLOP/s (2 × the multiply-adds
        of the convolutions and the attention matmuls; norms, SiLU, softmax and upsampling are not counted) and that
        rate as a fraction of the FP32 peak on all worker threads. With --inception, the same for pytorch-fid's
        Inception-v3 up to pool3 on the decoded images (uint8, resized to 299²; GFLOP = 2 × conv multiply-adds).
        """)

    @Option(help: "Latent side (32 for 256² images).")
    var latent: Int = 32

    @Option(help: "Images per decode call.")
    var batch: Int = 1

    @Option(parsing: .upToNextOption, help: "GEMM backends: openblas, onednn.")
    var gemm: [String] = ["openblas", "onednn"]

    @Option(help: "Timed decodes per backend; the median is reported.")
    var iterations: Int = 3

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(help: "Per-worker im2col scratch, Mi floats (bigger bands, fewer GEMMs).")
    var scratchMiFloats: Int = 2

    @Flag(help: "Also time the FID Inception (pool3 features) on the decoded images.")
    var inception = false

    func validate() throws {
        guard (1...256).contains(latent) else { throw ValidationError("--latent must be in 1...256, got \(latent)") }
        guard (1...64).contains(batch) else { throw ValidationError("--batch must be in 1...64, got \(batch)") }
        guard (1...1000).contains(iterations) else { throw ValidationError("--iterations must be in 1...1000, got \(iterations)") }
        guard threads == nil || (1...256).contains(threads!) else { throw ValidationError("--threads must be in 1...256") }
        guard (1...1024).contains(scratchMiFloats) else { throw ValidationError("--scratch-mi-floats must be in 1...1024") }
    }

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let backends = try gemm.map { try GEMMBackend.parse($0) }
        let cpus = min(Parallel.threads, PhysicalPeak.cpuCount)
        let peaks = MachinePeaks.measure(repeats: 3, allThreads: cpus)
        peaks.printHeader()
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        print("load average (1/5/15 min) before: \(load); \(Parallel.threads) worker(s)")
        let weights = VAEDecoderWeights(config: .sdVAE, seed: 1)
        let dec = VAEDecoder(weights: weights, latentHeight: latent, latentWidth: latent, maxBatch: batch,
                             convScratchFloats: scratchMiFloats << 20)
        var rng = SplitMix64(seed: 3)
        let z = FloatBuffer((0..<(batch * 4 * latent * latent)).map { _ in 0.18215 * (2 * rng.nextUnitFloat() - 1) })
        let out = FloatBuffer(count: batch * dec.imageCount)
        let gflop = dec.flopsPerImage * Double(batch) / 1e9
        print(String(format: "sd-vae decoder, %d² latent → %d² image, batch %d: %.1f GFLOP per decode, %.1f M parameters",
                     latent, dec.outHeight, batch, gflop, Double(weights.parameterCount) / 1e6))
        var times: [GEMMBackend: [Double]] = [:]
        for b in backends { GEMMBackend.current = b; dec.decode(latents: z.pointer, batch: batch, scalingFactor: 0.18215, into: out.pointer) }
        for _ in 0..<iterations {
            for b in backends {
                GEMMBackend.current = b
                let start = DispatchTime.now().uptimeNanoseconds
                dec.decode(latents: z.pointer, batch: batch, scalingFactor: 0.18215, into: out.pointer)
                times[b, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        let peak = peaks.best(.fp32, threads: cpus)
        print("backend    s/decode   images/s   GFLOP/s   of FP32 peak (\(cpus) thread\(cpus == 1 ? "" : "s"))")
        for b in backends {
            let med = median(times[b]!)
            let rate = gflop / med
            print(b.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                  + String(format: " %9.3f  %9.3f  %8.1f   ", med, Double(batch) / med, rate)
                  + (peak.map { String(format: "%5.1f%%", 100 * rate / $0) } ?? "n/a"))
        }
        if inception {
            // FID Inception on the decoded images (pixels by the sample_ddp rule), random weights.
            let net = FIDInception(weights: FIDInceptionWeights(seed: 2), imageHeight: dec.outHeight, imageWidth: dec.outWidth,
                                   maxBatch: batch)
            let pixels = TypedBuffer<UInt8>(count: batch * dec.imageCount, repeating: 0)
            PixelQuantisation.roundHalfUp.quantise(out.pointer, count: batch * dec.imageCount, into: pixels.pointer)
            let feats = FloatBuffer(count: batch * FIDInception.featureCount)
            let igflop = net.flopsPerImage * Double(batch) / 1e9
            print(String(format: "FID Inception (pytorch-fid, resize %d² → 299²), batch %d: %.2f GFLOP per call", dec.outHeight, batch, igflop))
            var itimes: [GEMMBackend: [Double]] = [:]
            for b in backends { GEMMBackend.current = b; net.features(pixels: pixels.pointer, batch: batch, into: feats.pointer) }
            for _ in 0..<iterations {
                for b in backends {
                    GEMMBackend.current = b
                    let start = DispatchTime.now().uptimeNanoseconds
                    net.features(pixels: pixels.pointer, batch: batch, into: feats.pointer)
                    itimes[b, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
            }
            print("backend    s/call     images/s   GFLOP/s   of FP32 peak")
            for b in backends {
                let med = median(itimes[b]!)
                let rate = igflop / med
                print(b.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                      + String(format: " %9.3f  %9.3f  %8.1f   ", med, Double(batch) / med, rate)
                      + (peak.map { String(format: "%5.1f%%", 100 * rate / $0) } ?? "n/a"))
            }
        }
        let after = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        print("load average after: \(after)")
    }
}
