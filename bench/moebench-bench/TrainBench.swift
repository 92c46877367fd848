import ArgumentParser
import DiT
import Diffusion
import Foundation
import Harness
import Metrics
import Tensor
import Training

/// Training throughput of moebench's trainer, side by side with upstream PyTorch training the same model on the
/// same thread count, alternating in one run.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training steps per second and true GFLOP/s, moebench against upstream PyTorch.",
        discussion: """
        For each model: --rounds rounds, each timing --steps training steps of moebench (after --warmup \
        untimed ones) and then, with --models-py, the same number of upstream PyTorch steps \
        (bench/pytorch_train.py, same batch, same thread count), so both see the same machine load. A step is \
        the full DDPM loss (ε-MSE + VLB + balance loss), backward and AdamW on random data. Reported: median \
        ms per step over all timed steps, samples/s, true GFLOP/s (3 × the forward FLOPs of ModelCost: every \
        linear and attention matmul, multiply-add = 2 FLOPs) against the sgemm rate measured in the same run, \
        and the ratio of PyTorch's median step time to moebench's (> 1: moebench faster).
        """)

    @Option(parsing: .upToNextOption, help: "Models: digits-moe, digits-dense, built-in names or JSON configs.")
    var models: [String] = ["digits-moe", "digits-dense", "DiT-MoE-S/2-8E2A"]

    @Option(help: "Images per step for the digits models.")
    var batch: Int = 128

    @Option(name: .customLong("batch-large"), help: "Images per step for 32×32 latent models (DiT-MoE-S/2-8E2A).")
    var batchLarge: Int = 8

    @Option(help: "Timed steps per round.")
    var steps: Int = 10

    @Option(help: "Untimed steps before the first round.")
    var warmup: Int = 2

    @Option(help: "Alternating rounds (moebench, then PyTorch) per model.")
    var rounds: Int = 2

    @Option(help: "Worker threads for both (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("models-py"), help: "Upstream feizc/DiT-MoE models.py: adds the PyTorch side (needs torch and timm).")
    var modelsPy: String?

    @Option(help: "Python interpreter for the PyTorch side.")
    var python: String = "python3"

    @Flag(help: "Print one JSON object per model instead of the table.")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(batch), (1...100_000).contains(batchLarge) else { throw ValidationError("--batch and --batch-large must be between 1 and 100000") }
        guard (1...10_000).contains(steps), (0...10_000).contains(warmup), (1...100).contains(rounds) else {
            throw ValidationError("--steps 1…10000, --warmup 0…10000, --rounds 1…100")
        }
        guard threads == nil || (1...256).contains(threads!) else { throw ValidationError("--threads must be between 1 and 256") }
    }

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let roof = Roofline.best(threads: Parallel.threads).gflops
        if !json {
            print("OpenBLAS \(BLASThreads.coreName) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset")), \(Parallel.threads) worker(s); sgemm rate measured now: \(String(format: "%.1f", roof)) GFLOP/s")
            print("model              batch  side       ms/step  samples/s  GFLOP/s  of sgemm  PyTorch÷moebench")
        }
        for name in models {
            let config = try DiTConfig.resolve(name)
            let b = config.inputSize <= 8 ? batch : batchLarge
            let model = TrainableDiT(config: config, balanceAlpha: config.isMoE ? 0.01 : 0)
            UpstreamInit.fill(model.params, seed: 0)
            let optimizer = AdamW(like: model.params)
            let stepper = TrainingStep(config: config, batch: b)
            let image = config.inChannels * config.inputSize * config.inputSize
            var rng = Xoshiro256(seed: 1)
            let x0 = FloatBuffer((0..<(b * image)).map { _ in Float(rng.normal()) })
            let noise = FloatBuffer((0..<(b * image)).map { _ in Float(rng.normal()) })
            let t = TypedBuffer<Int32>(count: b, repeating: 0), y = TypedBuffer<Int32>(count: b, repeating: 0)
            for i in 0..<b { t.pointer[i] = Int32(rng.next() % 1000); y.pointer[i] = Int32(rng.next() % UInt64(config.numClasses + 1)) }
            func step() { _ = stepper.run(model: model, optimizer: optimizer, x0: x0.pointer, noise: noise.pointer, t: t.pointer,
                                          y: y.pointer, lr: 1e-4, clip: 0) }
            for _ in 0..<warmup { step() }
            var ours: [Double] = [], theirs: [Double] = []
            for _ in 0..<rounds {
                for _ in 0..<steps {
                    let start = PhaseProfile.now()
                    step()
                    ours.append(Double(PhaseProfile.now() - start) / 1e9)
                }
                if let modelsPy { theirs += try pytorchSteps(name: name, config: config, batch: b, modelsPy: modelsPy) }
            }
            let flops = 3 * ModelCost(ModelShape(config)).trueFLOPs * Double(b)
            let med = median(ours)
            let ratio = theirs.isEmpty ? nil : median(theirs) / med
            if json {
                JSONLines.print(TrainRow(model: name, batch: b, threads: Parallel.threads, msPerStep: med * 1e3, samplesPerS: Double(b) / med,
                                         gflops: flops / med / 1e9, sgemmGflops: roof, openblasCore: BLASThreads.coreName,
                                         pytorchMsPerStep: ratio == nil ? nil : median(theirs) * 1e3, pytorchOverMoebench: ratio))
            } else {
                let pt = ratio.map { String(format: "%.2f× (%.0f ms)", $0, median(theirs) * 1e3) } ?? "—"
                print(name.padding(toLength: 18, withPad: " ", startingAt: 0)
                      + String(format: " %5d  %4d  %12.1f  %9.1f  %7.1f  %7.0f%%  ", b, config.inputSize, med * 1e3, Double(b) / med,
                               flops / med / 1e9, 100 * flops / med / 1e9 / roof) + pt)
            }
        }
    }

    /// Step times of bench/pytorch_train.py for the same model, batch and threads.
    func pytorchSteps(name: String, config: DiTConfig, batch: Int, modelsPy: String) throws -> [Double] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pytorch_train.py").path
        var args = [script, "--models-py", modelsPy, "--threads", "\(Parallel.threads)", "--batch", "\(batch)",
                    "--steps", "\(steps)", "--warmup", "\(warmup)", "--json", "--step-times"]
        if DiTConfig.digits[name] != nil || name.hasPrefix("DiT-MoE-S/2") {
            args += ["--config", name]
            if name == "digits-dense" { args += ["--dense-hidden", "\(config.hiddenSize)"] }
        } else {
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("train-bench-\(getpid()).json")
            try Data(configJSON(config).utf8).write(to: tmp)
            args += ["--config", tmp.path]
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let times = obj["step_times_ms"] as? [Double] else {
            throw ValidationError("bench/pytorch_train.py failed for \(name) (exit \(p.terminationStatus)); run it by hand to see why")
        }
        return times.map { $0 / 1e3 }
    }
}

/// One `train --json` line: median ms per training step of moebench, and of upstream PyTorch when it ran.
struct TrainRow: Encodable {
    var model: String
    var batch: Int
    var threads: Int
    var msPerStep: Double
    var samplesPerS: Double
    var gflops: Double
    var sgemmGflops: Double
    var openblasCore: String
    var pytorchMsPerStep: Double?
    var pytorchOverMoebench: Double?
}
