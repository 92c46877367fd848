import ArgumentParser
import DiT
import Foundation
import Tensor
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a small DiT-MoE or dense DiT on the bundled digits (DDPM, balance loss, AdamW, EMA).",
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
        """)

    @Option(help: "digits-moe, digits-dense, a built-in DiT name, or a JSON file with the upstream constructor's argument names (input_size 8, in_channels 1, num_classes 10 for the digits).")
    var config: String = "digits-moe"

    @Option(help: "Training data: digits (the bundled UCI digits, 8×8 one channel) or a CSV file of the same format (64 pixels 0–16, then the label).")
    var data: String = "digits"

    @Option(help: "Optimiser steps.")
    var steps: Int = 2000

    @Option(help: "Images per step.")
    var batch: Int = 128

    @Option(help: "Peak learning rate (after the warm-up).")
    var lr: Double = 1e-3

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
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
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
    }

    func run() throws {
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
