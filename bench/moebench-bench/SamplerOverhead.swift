import ArgumentParser
import CBLAS
import Diffusion
import Foundation
import Metrics

/// Time the samplers spend outside the model call, per NFE, against one DiT-S-sized GEMM.
struct SamplerOverhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampler-overhead",
        abstract: "Sampler time outside the model call per NFE, as a fraction of a DiT-S-sized GEMM (goal < 2%).",
        discussion: """
        Each integrator (and DLG's Langevin x-step) drives a trivial linear denoiser D = 0.9·x whose own time is \
        measured inside the call and subtracted, so what remains is the sampler's arithmetic, noise generation and \
        schedule bookkeeping. The baseline, measured in the same run, is one cblas_sgemm of DiT-S's MLP fc1 shape: \
        M = 256 tokens × batch, K = 384, N = 1536 (about 1/36 of a DiT-S/2 forward, so the ratio is pessimistic \
        by that factor). Sample dimension defaults to DiT-S/2's latent, 4×32×32 = 4096 floats.
        """)

    @Option(help: "Elements per sample (4096 = a 4×32×32 latent).") var dim: Int = 4096
    @Option(help: "Samples per batch (GEMM M = 256 × batch).") var batch: Int = 8
    @Option(help: "Repetitions; medians are reported.") var reps: Int = 5
    @Flag(help: "Print JSON instead of the table.") var json = false

    func validate() throws {
        guard (1...1 << 20).contains(dim), (1...1024).contains(batch), (1...1000).contains(reps) else {
            throw ValidationError("--dim 1…1048576, --batch 1…1024 and --reps 1…1000 expected, got \(dim), \(batch), \(reps)")
        }
    }

    final class TimedLinear: Denoiser {
        let dimension: Int
        var inside: Double = 0
        init(_ d: Int) { dimension = d }
        func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            let t = DispatchTime.now().uptimeNanoseconds
            for k in 0..<(batch * dimension) { out[k] = 0.9 * x[k] }
            inside += Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
        }
    }

    final class FixedLevel: NoiseLevelEstimator {
        let levels = NoiseLevels(sigmaMax: 50)
        func mostLikelyLevel(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Int>) {
            for b in 0..<batch { out[b] = 500 }
        }
    }

    struct Row: Codable { var method: String; var nfe: Int; var overheadPerNFE: Double; var fractionOfGEMM: Double }

    func run() throws {
        let m = 256 * batch, k = 384, n = 1536
        let a = [Float](repeating: 0.01, count: m * k), w = [Float](repeating: 0.02, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        func gemm() -> Double {
            let t = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), w, Int32(k), 0, &c, Int32(n))
            return Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
        }
        _ = gemm()
        let gemmTime = median((0..<max(reps, 5)).map { _ in gemm() })
        let gflops = 2 * Double(m) * Double(n) * Double(k) / gemmTime / 1e9

        let methods: [(String, Integrator?)] = [
            ("kar1 N=11", .kar1(gridPoints: 11)), ("kar2 N=11", .kar2(gridPoints: 11, churn: .dmcmc)),
            ("pf N=20", .probabilityFlow(steps: 20)), ("rk45 tol=1e-3", .rk45(rtol: 1e-3, atol: 1e-3)),
            ("rd N=20", .reverseDiffusion(steps: 20)), ("em N=20", .eulerMaruyama(steps: 20)),
            ("dlg x-step (20 Langevin)", nil),
        ]
        var rows = [Row]()
        let x = UnsafeMutablePointer<Float>.allocate(capacity: batch * dim)
        defer { x.deallocate() }
        for (name, method) in methods {
            var per = [Double](), nfe = 0
            for r in 0..<(reps + 1) {
                let model = TimedLinear(dim)
                let ctx = SamplerContext(denoiser: CountingDenoiser(model), noise: SeededNormalNoise(seed: UInt64(r)))
                for i in 0..<(batch * dim) { x[i] = Float(i % 97) * 0.5 }
                let t = DispatchTime.now().uptimeNanoseconds
                if let method = method {
                    _ = try method.integrate(x, start: Array(repeating: 50, count: batch), context: ctx)
                } else {
                    let chains = DLGChains(chains: batch, estimator: FixedLevel(), context: ctx)
                    for _ in 0..<20 { chains.langevinStep(epsilon: 0.5) }
                }
                let total = Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
                nfe = ctx.denoiser.calls
                if r > 0 { per.append((total - model.inside) / Double(nfe)) }      // first run warms up
            }
            let o = median(per)
            rows.append(Row(method: name, nfe: nfe, overheadPerNFE: o, fractionOfGEMM: o / gemmTime))
        }
        if json {
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Out: Codable { var gemmSeconds: Double; var gemmGFLOPs: Double; var shape: String; var dim: Int; var batch: Int; var rows: [Row] }
            print(String(decoding: try enc.encode(Out(gemmSeconds: gemmTime, gemmGFLOPs: gflops, shape: "M=\(m) K=\(k) N=\(n)",
                                                      dim: dim, batch: batch, rows: rows)), as: UTF8.self))
            return
        }
        print(String(format: "baseline: cblas_sgemm M=%d (256 tokens × %d) K=%d N=%d: %.3f ms median (%.0f GFLOP/s)",
                     m, batch, k, n, gemmTime * 1e3, gflops))
        print("sample dimension \(dim), batch \(batch); overhead = sampler time outside the model call, per NFE")
        print("method                      NFE   overhead/NFE   % of GEMM")
        for r in rows {
            print(r.method.padding(toLength: 26, withPad: " ", startingAt: 0)
                  + String(format: " %4d   %8.1f µs    %6.2f%%", r.nfe, r.overheadPerNFE * 1e6, 100 * r.fractionOfGEMM))
        }
    }
}
