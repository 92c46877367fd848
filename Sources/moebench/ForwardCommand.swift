import ArgumentParser
import Cluster
import DiT
import Foundation
import Tensor
import Wire

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one DiT-MoE or dense DiT forward pass on a batch and write the outputs.",
        discussion: """
        Compares the engine with the PyTorch reference. The input file \
        (safetensors) holds:
          x  [B, C, H, W] F32  latents (C = in_channels, H = W = input_size)
          t  [B] F32           timesteps in the checkpoint's own units
                               (DDPM step 0…999, or RF time in (0, 1])
          y  [B] I64           class ids (I32 accepted); num_classes = null
        The output file holds:
          out                  [B, C_out, H, W] F32 (C_out = 2·C, learned σ)
          routing.<i>.experts  [B·T, K] I32, MoE layer i, (sample, token) order
          routing.<i>.weights  [B·T, K] F32 gate probabilities, slots sorted
                               by weight, descending
        With --cfg-scale S the batch is 2n (conditional half, then the \
        unconditional half with y = num_classes) and `out` is upstream's \
        forward_with_cfg: guidance on channels 0–2, other channels per half.

        Examples:
          moebench forward --config DiT-MoE-S/2-8E2A \\
              --weights dit_moe_s_8E2A.safetensors \\
              --input in.safetensors --output out.safetensors
          moebench forward --config my.json --seed 7 \\
              --input in.safetensors --output out.safetensors
          moebench cluster up --config DiT-MoE-S/2-8E2A --seed 7
          moebench forward --config DiT-MoE-S/2-8E2A --seed 7 --hosts hosts \\
              --input in.safetensors --output out.safetensors
        """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Input safetensors file with x, t, y.")
    var input: String

    @Option(help: "Output safetensors file to write.")
    var output: String

    @Option(name: .customLong("cfg-scale"), help: "Classifier-free guidance scale; runs the CFG forward on the whole batch.")
    var cfgScale: Float?

    @Option(help: "Run the routed experts on the workers of this hosts file (started with `moebench cluster up`); attention, gating and the shared expert stay here.")
    var hosts: String?

    @Option(name: .customLong("secret-file"), help: "The cluster's shared secret (default: the one `cluster up` generated next to the hosts file).")
    var secretFile: String?

    @Option(help: "Activation shard codec for --hosts: f32|f16|bf16, optionally +shuffle and +lz4 or +auto (e.g. f32+shuffle+auto). F16/BF16 are lossy.")
    var codec: String = "f32+shuffle+auto"

    @Option(help: "Worker threads (default: all cores). BLAS itself runs single-threaded inside each worker.")
    var threads: Int?

    @Flag(help: "Print a JSON summary instead of the human one.")
    var json = false

    func validate() throws {
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be between 1 and 256, got \(threads)") }
        if let cfgScale, !cfgScale.isFinite { throw ValidationError("--cfg-scale must be a finite number") }
    }

    func run() throws {
        EngineThreads.configure(threads)
        let precision = try self.model.applyCompute()
        do {
            let cfg = try self.model.resolveConfig()
            let model = try DiTModel(weights: DiTWeights(config: cfg, source: self.model.source, precision: precision))
            if let hosts {
                guard cfg.isMoE else { throw RuntimeError("--hosts needs a MoE model; \(cfg.name) is dense") }
                guard let options = ShardOptions(parsing: codec) else { throw ValidationError("--codec: cannot read '\(codec)'") }
                model.executor = try ClusterRuntime.executor(hostsPath: hosts, secretPath: secretFile, weights: model.weights, codec: options)
            }
            let input = try ForwardInput.load(path: input, config: cfg)
            let start = Date()
            let result = try ForwardResult.run(model: model, input: input, cfgScale: cfgScale)
            let seconds = Date().timeIntervalSince(start)
            try result.write(to: output)
            let summary: [String: JSONValue] = [
                "config": .string(cfg.name), "batch": .number(Double(input.batch)),
                "output": .string(output), "seconds": .number(seconds),
                "weights": .string(self.model.weights ?? "random(seed: \(self.model.seed))"), "fingerprint": .string(model.weights.fingerprint),
                "moe_layers_recorded": .number(Double(result.routing?.experts.count ?? 0)),
                "executor": .string(hosts.map { "cluster (\($0))" } ?? "in-process"),
                "gemm": .string(GEMMBackend.current.rawValue), "precision": .string(precision.rawValue),
                "weights_in_memory": .string(model.weights.packingSummary ?? "as stored"),
            ]
            if json {
                let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
                print(String(decoding: try enc.encode(JSONValue.object(summary)), as: UTF8.self))
            } else {
                print("\(cfg.name): batch \(input.batch)\(cfgScale.map { ", CFG scale \($0)" } ?? ""), "
                      + String(format: "%.1f ms", seconds * 1000) + " → \(output)")
                print("GEMM: \(GEMMBackend.current.rawValue), \(precision.rawValue); weights: \(model.weights.packingSummary ?? "used as stored")")
            }
        } catch let e as DiTError {
            throw RuntimeError(e.description)
        } catch let e as ClusterError {
            throw RuntimeError("\(e)")
        }
    }
}

/// Thread policy for the engine: BLAS single-threaded, parallelism in the application (OpenBLAS's own workers spin
/// about 100 ms after every multi-threaded call, taking the other core; docs/engine.md, "Threading model").
enum EngineThreads {
    static func configure(_ requested: Int?) {
        BLASThreads.set(1)
        Parallel.threads = requested ?? ProcessInfo.processInfo.activeProcessorCount
    }
}
