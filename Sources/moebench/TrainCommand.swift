import ArgumentParser
import DiT
import Foundation
import Tensor
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a small DiT-MoE or dense DiT on the bundled digits (DDPM, balance loss, AdamW, EMA), or one of the two digit classifiers (--noise-classifier, --feature-net).",
        discussion: """
        Trains with upstream DiT-MoE's objective: 1000 linear betas, ε prediction plus the variational bound for \
        the learned σ channels, and per MoE layer the expert-level balance loss α·Σ_i P_i·f_i. AdamW (no weight \
        decay by default) with a linear warm-up and cosine decay, global gradient clipping, an EMA of the weights, \
        label dropout for classifier-free guidance.

        The data are the 1,797 UCI handwritten digits shipped with moebench (8×8, pixels scaled to [−1, 1], CC BY \
        4.0, Alpaydin & Kaynak 1998), split by a fixed seed into 1,497 training and 300 held-out images. They are \
        not ImageNet: every figure made on them says so.

        The output directory holds ema.safetensors and model.safetensors (upstream key names, loadable by \
        `moebench forward --config DIR/config.json --weights DIR/ema.safetensors` and by upstream models.py), \
        config.json, the optimiser state, state.json and train.jsonl (loss parts, per-layer expert load, \
        balancedness, samples/s, held-out loss of the EMA weights). Running the same command again resumes from \
        the last checkpoint; Ctrl-C checkpoints and stops.

        Examples:
          moebench train --config digits-moe --out runs/digits-moe
          moebench train --config digits-dense --out runs/digits-dense
          moebench train --config digits-moe --balance-alpha 0 --out runs/alpha0
          moebench train --config digits-moe --shared-experts 0 --out runs/noshared
          moebench train --config my-digits.json --steps 500 --batch 64 --out runs/mine

        Classifiers (an MLP, AdamW with warm-up and cosine decay; --config and the DiT options do not apply):
          --noise-classifier: DLG's noise-level classifier over 1000 levels σ_k = 0.02·(157.4/0.02)^(1−k/1000) in \
        [−1, 1] pixel units (index 0 = largest σ; σ_max is the DDPM table's σ_999 = √(1/ᾱ_999 − 1)), trained with \
        cross-entropy on k for x0 + σ_k·z. Writes classifier.safetensors and classifier.json (level set, σ-recovery \
        |log σ̂ − log σ| by σ band on held-out digits and on pure noise). Defaults: input rms-normalised, 20000 steps, \
        batch 256, lr 5e-3.
          --feature-net: the digit classifier whose last hidden layer gives FID-digits' features. Writes \
        feature-net.safetensors and feature-net.json (held-out accuracy, the train-vs-held-out floor at n = 300 and \
        1000). Defaults: 3000 steps, batch 128.
          moebench train --noise-classifier --out runs/noise-classifier
          moebench train --feature-net --seed 0 --out runs/feature-net
        """)

    @Option(help: "digits-moe, digits-dense, a built-in DiT name, or a JSON file with the upstream constructor's argument names (input_size 8, in_channels 1, num_classes 10 for the digits).")
    var config: String = "digits-moe"

    @Option(help: "Training data: digits (the bundled UCI digits, 8×8 one channel) or a CSV file of the same format (64 pixels 0–16, then the label).")
    var data: String = "digits"

    @Option(name: .customLong("steps"), help: "Optimiser steps (default 2000; --noise-classifier 20000; --feature-net 3000).")
    var stepsOption: Int?

    @Option(name: .customLong("batch"), help: "Images per step (default 128; --noise-classifier 256).")
    var batchOption: Int?

    @Flag(name: .customLong("noise-classifier"), help: "Train DLG's noise-level classifier (an MLP over 1000 σ levels) instead of a DiT.")
    var noiseClassifier = false

    @Flag(name: .customLong("feature-net"), help: "Train the digit classifier whose last hidden layer gives FID-digits' features instead of a DiT.")
    var featureNet = false

    @Option(help: "With --noise-classifier: the input encoding, rms-normalised (pixels / RMS, then log RMS), raw (the 64 pixels) or raw+log-rms.")
    var input: String = "rms-normalised"

    @Option(help: "With --noise-classifier or --feature-net: hidden widths of the MLP, comma-separated (defaults 256,64 and 128,64).")
    var hidden: String?

    var steps: Int { stepsOption ?? (noiseClassifier ? 20000 : featureNet ? 3000 : 2000) }
    var batch: Int { batchOption ?? (noiseClassifier ? 256 : 128) }

    @Option(name: .customLong("lr"), help: "Peak learning rate (after the warm-up; default 1e-3, --noise-classifier 5e-3).")
    var lrOption: Double?

    var lr: Double { lrOption ?? (noiseClassifier ? 5e-3 : 1e-3) }

    @Option(help: "Linear warm-up steps (at most --steps).")
    var warmup: Int = 100

    @Option(name: .customLong("balance-alpha"), help: "α of the expert-level balance loss per MoE layer (upstream's code: 0.01; 0 turns it off).")
    var balanceAlpha: Double = 0.01

    @Option(name: .customLong("shared-experts"), help: "1 keeps the shared expert (one SwiGLU of width 2D, as upstream's n_shared_experts = 2); 0 removes it.")
    var sharedExperts: Int?

    @Flag(help: "Train the dense DiT twin of the config instead of the MoE (tanh-GELU MLP of width mlp_ratio·D).")
    var dense = false

    @Option(name: .customLong("ema-decay"), help: "EMA decay (warmed up as min(decay, (1+s)/(10+s))).")
    var emaDecay: Double = 0.999

    @Option(help: "Global gradient-norm clip (0: none).")
    var clip: Double = 1.0

    @Option(name: .customLong("label-dropout"), help: "Probability of replacing a label by the null class.")
    var labelDropout: Double = 0.1

    @Option(help: "Seed of the initialisation, batches, noise and label dropout.")
    var seed: UInt64 = 0

    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints (and held-out evaluations).")
    var checkpointEvery: Int = 250

    @Option(name: .customLong("log-every"), help: "Steps per train.jsonl record.")
    var logEvery: Int = 10

    @Option(help: "Worker threads (default: all cores); BLAS runs single-threaded inside each.")
    var threads: Int?

    @Option(help: "Output directory (created; an existing run there is resumed).")
    var out: String

    func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws { if !ok { throw ValidationError(message()) } }
        try check((1...10_000_000).contains(steps), "--steps must be between 1 and 10000000, got \(steps)")
        try check((1...65_536).contains(batch), "--batch must be between 1 and 65536, got \(batch)")
        try check(lr > 0 && lr < 1, "--lr must be in (0, 1), got \(lr)")
        try check((0...10_000_000).contains(warmup), "--warmup must be between 0 and 10000000, got \(warmup)")
        try check(balanceAlpha >= 0 && balanceAlpha <= 10, "--balance-alpha must be in [0, 10], got \(balanceAlpha)")
        try check(sharedExperts == nil || [0, 1].contains(sharedExperts!), "--shared-experts must be 0 or 1, got \(sharedExperts!)")
        try check(emaDecay >= 0 && emaDecay < 1, "--ema-decay must be in [0, 1), got \(emaDecay)")
        try check(clip >= 0, "--clip must be ≥ 0, got \(clip)")
        try check(labelDropout >= 0 && labelDropout < 1, "--label-dropout must be in [0, 1), got \(labelDropout)")
        try check(checkpointEvery >= 1, "--checkpoint-every must be ≥ 1, got \(checkpointEvery)")
        try check(logEvery >= 1, "--log-every must be ≥ 1, got \(logEvery)")
        try check(threads == nil || (1...256).contains(threads!), "--threads must be between 1 and 256, got \(threads!)")
        try check(!(noiseClassifier && featureNet), "--noise-classifier and --feature-net train different models; give one of them")
        try check(NoiseClassifierInput(rawValue: input) != nil, "--input must be raw, rms-normalised or raw+log-rms, got \(input)")
        if let h = hidden {
            let w = h.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            try check(!w.isEmpty && w.allSatisfy { ($0 ?? 0) >= 1 && ($0 ?? 0) <= 4096 },
                      "--hidden must be a comma list of widths between 1 and 4096, e.g. 256,64; got \(h)")
        }
    }

    func run() throws {
        if noiseClassifier || featureNet { return try runClassifier() }
        var c: DiTConfig
        do { c = try DiTConfig.resolve(config) } catch let e as DiTError { throw RuntimeError(e.description) }
        if dense, !c.dense {
            c.dense = true; c.useFlashAttn = false; c.name += "-dense"
        }
        if let s = sharedExperts, !c.dense {
            c.numSharedExperts = s == 0 ? 0 : 2
            if s == 0 { c.name += "-noshared" }
        }
        do { try c.validate(source: config) } catch let e as DiTError { throw RuntimeError(e.description) }

        let all: DigitsDataset
        do { all = data == "digits" ? try DigitsDataset.bundled() : try DigitsDataset.load(csv: data) }
        catch let e as DiTError { throw RuntimeError(e.description) }
        let (train, heldOut) = all.split()

        var o = TrainingOptions()
        o.steps = steps; o.batch = batch; o.lr = lr; o.warmupSteps = min(warmup, steps); o.balanceAlpha = c.dense ? 0 : balanceAlpha
        o.emaDecay = emaDecay; o.clip = clip; o.labelDropout = labelDropout; o.seed = seed
        o.checkpointEvery = checkpointEvery; o.evalEvery = checkpointEvery; o.logEvery = logEvery

        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let trainer: Trainer
        do {
            trainer = try Trainer(config: c, options: o, train: train, heldOut: heldOut,
                                  dataName: data == "digits" ? "digits" : URL(fileURLWithPath: data).lastPathComponent,
                                  directory: out)
        } catch let e as TrainingError { throw RuntimeError(e.description) }
        catch let e as DiTError { throw RuntimeError(e.description) }

        let progress = TrainingProgress(total: steps, startStep: trainer.step)
        FileHandle.standardError.write(Data(("train: \(c.name), \(train.count) training / \(heldOut.count) held-out digits, "
            + "batch \(batch), \(steps) steps, \(Parallel.threads) threads → \(out)"
            + (trainer.resumed ? " (resuming at step \(trainer.step))" : "") + "\n").utf8))
        trainer.onRecord = { progress.show($0) }
        StopSignal.install()
        do { try trainer.run(shouldStop: { StopSignal.requested }) }
        catch let e as TrainingError { throw RuntimeError(e.description) }
        catch let e as DiTError { throw RuntimeError(e.description) }
        progress.finish(stoppedAt: trainer.step, interrupted: StopSignal.requested && trainer.step < steps, directory: out)
    }
}

extension TrainCommand {
    /// `--noise-classifier` / `--feature-net`: an MLP on the digits, weights and a JSON summary into --out.
    func runClassifier() throws {
        let all: DigitsDataset
        do { all = data == "digits" ? try DigitsDataset.bundled() : try DigitsDataset.load(csv: data) }
        catch let e as DiTError { throw RuntimeError(e.description) }
        var t = MLPTrainingOptions()
        t.steps = steps; t.batch = batch; t.lr = lr; t.warmup = min(warmup, steps); t.seed = seed; t.clip = clip
        let widths = hidden.map { $0.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! } }
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let command = CommandLine.arguments.dropFirst().joined(separator: " ")
        let log: (String) -> Void = { FileHandle.standardError.write(Data(($0.hasSuffix("\n") ? $0 : $0 + "\n").utf8)) }
        do {
            if noiseClassifier {
                var o = NoiseClassifierOptions()
                o.training = t; o.input = NoiseClassifierInput(rawValue: input)!
                if let w = widths { o.hidden = w }
                log("train: noise-level classifier, \(o.levels.count) levels σ ∈ [\(o.levels.sigmaMin), \(String(format: "%.2f", o.levels.sigmaMax))] ([−1, 1] units), input \(input), hidden \(o.hidden), \(steps) steps of \(batch) → \(out)")
                _ = try ClassifierRuns.noiseClassifier(o, data: all, directory: out, command: "moebench " + command, log: log)
                log("wrote \(out)/classifier.safetensors and \(out)/classifier.json")
            } else {
                var o = DigitFeatureNet.Options()
                t.weightDecay = o.training.weightDecay
                o.training = t
                if let w = widths { o.hidden = w }
                log("train: digit feature net, hidden \(o.hidden), \(steps) steps of \(batch) → \(out)")
                _ = try ClassifierRuns.featureNet(o, data: all, directory: out, command: "moebench " + command, log: log)
                log("wrote \(out)/feature-net.safetensors and \(out)/feature-net.json")
            }
        } catch let e as TrainingError { throw RuntimeError(e.description) }
        catch let e as DiTError { throw RuntimeError(e.description) }
    }
}

/// One status line on stderr, rewritten in place: step, losses, held-out loss, throughput and ETA.
final class TrainingProgress {
    let total: Int
    let startStep: Int
    let started = Date()
    var heldOut: Double?
    var firstHeldOut: Double?

    init(total: Int, startStep: Int) { self.total = total; self.startStep = startStep }

    func show(_ r: TrainingLogRecord) {
        if r.kind == "eval" {
            heldOut = r.loss
            if firstHeldOut == nil { firstHeldOut = r.loss }
            return
        }
        let done = r.step - startStep, rate = Date().timeIntervalSince(started) / Double(max(done, 1))
        let eta = Double(total - r.step) * rate
        var line = String(format: "\rstep %d/%d  loss %.4f (mse %.4f, vb %.4f)", r.step, total, r.loss, r.mse, r.vb)
        if let b = r.balancedness { line += String(format: "  balancedness %.2f", b.reduce(0, +) / Double(max(b.count, 1))) }
        if let h = heldOut { line += String(format: "  held-out %.4f", h) }
        if let s = r.samplesPerSecond { line += String(format: "  %.0f img/s", s) }
        line += "  ETA " + Self.duration(eta) + "   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish(stoppedAt step: Int, interrupted: Bool, directory: String) {
        var text = "\n" + (interrupted ? "interrupted at step \(step); checkpoint written, run the same command to resume" : "done")
        if let a = firstHeldOut, let b = heldOut { text += String(format: "; held-out loss %.4f → %.4f (EMA weights)", a, b) }
        FileHandle.standardError.write(Data((text + "\n  \(directory)/ema.safetensors\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}

/// SIGINT/SIGTERM set a flag the training loop polls, so it can checkpoint before exiting.
enum StopSignal {
    nonisolated(unsafe) static var requested = false
    static func install() {
        signal(SIGINT) { _ in StopSignal.requested = true }
        signal(SIGTERM) { _ in StopSignal.requested = true }
    }
}
