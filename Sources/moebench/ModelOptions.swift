import ArgumentParser
import DiT
import Tensor

/// The model a command runs: `--config`, `--weights`, `--seed` (shared by forward, worker and cluster up, so
/// every process of a cluster names its model the same way).
struct ModelOptions: ParsableArguments {
    @Option(help: "A built-in config name (e.g. DiT-MoE-S/2-8E2A, DiT-B/2; add @512 for 512² images) or a JSON file with the upstream constructor's argument names.")
    var config: String

    @Option(help: "Weights in safetensors with the upstream key names (F32, F16 or BF16). Without it, seeded random weights (every process of a cluster must use the same --seed).")
    var weights: String?

    @Option(help: "Seed of the random weights (used only without --weights).")
    var seed: UInt64 = 0

    @Option(help: "GEMM backend: onednn (default when oneDNN has a CPU engine) or openblas.")
    var gemm: String = GEMMBackend.current.rawValue

    @Option(help: "Arithmetic of the large GEMMs: fp32, or bf16 (weights converted to BF16 at load, BF16 inputs, FP32 accumulation; norms, softmax and routing stay FP32; needs --gemm onednn).")
    var precision: String = "fp32"

    var source: WeightSource { weights.map { .safetensors(path: $0) } ?? .random(seed: seed) }

    /// Sets the process-wide GEMM backend from `--gemm` and returns `--precision`; call before loading weights.
    func applyCompute() throws -> ComputePrecision {
        do {
            GEMMBackend.current = try GEMMBackend.parse(gemm)
            return try ComputePrecision.parse(precision)
        } catch let e as BackendError { throw ValidationError(e.description) }
    }

    /// `--gemm` and `--precision` as arguments for another moebench process (cluster workers).
    var computeArguments: [String] { ["--gemm", gemm, "--precision", precision] }

    func resolveConfig() throws -> DiTConfig {
        do { return try DiTConfig.resolve(config) } catch let e as DiTError { throw RuntimeError(e.description) }
    }
}

/// A failure while running a command (bad file, unreachable worker, …): printed as `Error: …` without the usage
/// block, which ArgumentParser adds only for mistakes in the command line itself.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
