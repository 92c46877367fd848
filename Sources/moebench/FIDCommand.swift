import ArgumentParser
import FID
import Foundation
import Tensor
import Vision

struct FIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "FID (and KID) of a folder of PNG images or an .npz sample batch, as pytorch-fid computes it.",
        discussion: """
        Reads the images, runs pytorch-fid's Inception-v3 (pool3, 2048 features; every image resized to 299×299 \
        bilinearly inside the network), accumulates the features' mean and covariance in float64, and prints the \
        Fréchet distance to the reference statistics. Numbers are pytorch-fid numbers: ADM's TensorFlow evaluator \
        (DiT-MoE's FID-50K) uses a slightly different Inception graph.

        INPUTS (IMAGES and --ref)
          DIR         the *.png files directly in DIR (not sub-folders), in name order. 8-bit gray, gray+alpha, RGB, \
        RGBA or palette, 1/2/4-bit gray or palette, non-interlaced; gray is replicated and alpha dropped, as \
        PIL's convert('RGB'). Images may differ in size. JPEG and other image files are refused (no decoder): \
        convert them to PNG. Other files (e.g. a ckpt.pt) are ignored.
          FILE.npz    `arr_0` uint8 [N, H, W, 3], what ADM's and DiT's sample_ddp.py write (np.savez or \
        np.savez_compressed).
        --ref also takes statistics: a .npz with `mu` [2048] and `sigma` [2048, 2048] (pytorch-fid's \
        --save-stats files, ADM's reference batches such as VIRTUAL_imagenet256_labeled.npz, or --write-stats \
        output).

        KID (--kid)
          Unbiased MMD² with the kernel k(x, y) = (xᵀy/2048 + 1)³ over --kid-subsets random subsets of \
        --kid-subset-size images of each set (defaults 100 and 1000, as torch-fidelity and clean-fid; the size \
        shrinks to the smaller set when needed, as clean-fid). Printed as mean ± std over subsets. KID needs the \
        reference's features: an image set, statistics written with --write-stats … --kid, or an ADM reference \
        batch (its `arr_0` images are run through Inception once and cached).

        CACHE
          Statistics (and features) of every image set are cached in --cache-dir (default $MOEBENCH_FID_CACHE, \
        else $XDG_CACHE_HOME/moebench/fid, else ~/.cache/moebench/fid), keyed by the SHA-256 of the images' bytes, \
        the Inception weights file and the preprocessing. Renaming a folder keeps its entry; changing an image \
        does not reuse it. A corrupt entry is detected (CRC-32 of every array, recorded key) and recomputed. \
        --no-cache turns it off.

        WEIGHTS
          --inception is pytorch-fid's pt_inception-2015-12-05-6726825d.pth converted to safetensors:
            python3 tools/convert_fid_inception.py \\
                pt_inception-2015-12-05-6726825d.pth fid_inception.safetensors

        Fewer than 2048 images give a rank-deficient covariance: FID is still defined (no complex square root \
        here) but biased upwards; compare FIDs at equal sample counts only.

        EXAMPLES
          moebench fid samples/ --ref VIRTUAL_imagenet256_labeled.npz \\
              --inception fid_inception.safetensors
          moebench fid samples.npz --ref cifar10_train_stats.npz \\
              --inception fid_inception.safetensors --json
          moebench fid real_images/ --write-stats real_stats.npz --kid \\
              --inception fid_inception.safetensors
          moebench fid samples/ --ref real_stats.npz --kid --threads 2 \\
              --inception fid_inception.safetensors
        """)

    @Argument(help: ArgumentHelp("The images: a directory of PNG files or an .npz with arr_0 uint8 [N, H, W, 3].", valueName: "DIR|FILE"))
    var images: String

    @Option(help: ArgumentHelp("Reference: statistics .npz (mu, sigma) or an image set (directory or arr_0 .npz).", valueName: "ref.npz|DIR"))
    var ref: String?

    @Option(help: ArgumentHelp("pytorch-fid's Inception weights as safetensors (tools/convert_fid_inception.py).", valueName: "file"))
    var inception: String

    @Option(name: .customLong("write-stats"), help: ArgumentHelp("Write the images' statistics (mu, sigma, count; features with --kid) to this .npz, usable as --ref.", valueName: "out.npz"))
    var writeStats: String?

    @Flag(help: "Also compute KID (needs reference features; see KID above).")
    var kid = false

    @Option(name: .customLong("kid-subsets"), help: "KID: number of random subsets.")
    var kidSubsets: Int = 100

    @Option(name: .customLong("kid-subset-size"), help: "KID: images per subset (capped at the smaller set).")
    var kidSubsetSize: Int = 1000

    @Option(help: "Images per Inception batch (about 22 MB of activations each).")
    var batch: Int = 8

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Statistics cache directory (see CACHE).", valueName: "dir"))
    var cacheDir: String?

    @Flag(name: .customLong("no-cache"), help: "Neither read nor write the statistics cache.")
    var noCache = false

    @Option(help: "Seed of the KID subsets.")
    var seed: UInt64 = 0

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    func validate() throws {
        if ref == nil && writeStats == nil { throw ValidationError("give --ref (to compute FID) and/or --write-stats (to save the images' statistics)") }
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be in 1…1024, got \(batch)") }
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be in 1…256, got \(threads)") }
        guard kidSubsets >= 1, kidSubsetSize >= 2 else { throw ValidationError("--kid-subsets must be ≥ 1 and --kid-subset-size ≥ 2") }
    }

    func run() throws {
        EngineThreads.configure(threads)
        let stderr = FileHandle.standardError
        let log: (String) -> Void = { stderr.write(Data(($0 + "\n").utf8)) }
        let extractor = try FIDFeatureExtractor(path: inception, maxBatch: batch)
        let cache = noCache ? nil : FIDStatsCache(directory: cacheDir ?? FIDStatsCache.defaultDirectory())
        let builder = FIDStatisticsBuilder(extractor: extractor, cache: cache)
        builder.log = log
        builder.progress = Self.progressPrinter(log)
        let set = try ImageSet(path: images)
        log("fid: \(set.count) image(s) in \(images)")
        let sample = try builder.statistics(of: set, keepFeatures: kid)
        if let writeStats {
            try sample.write(to: writeStats, includeFeatures: kid)
            log("fid: wrote the statistics of \(set.count) image(s) to \(writeStats)\(kid ? " (with features)" : "")")
        }
        guard let ref else { return }
        let reference = try FIDReference.load(ref, builder: builder, needFeatures: kid)
        if set.count < FIDInception.featureCount {
            log("fid: note: \(set.count) images < 2048 features: the sample covariance is rank-deficient and FID is biased upwards")
        }
        let score = try FIDScore.compute(sample, against: reference, kid: kid, kidSubsets: kidSubsets, kidSubsetSize: kidSubsetSize, seed: seed)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(score), as: UTF8.self))
        } else {
            print(String(format: "FID: %.4f  (%d images against %@)", score.fid, set.count,
                         reference.moments.sampleCount.map { "\($0) reference images" } ?? "reference statistics"))
            if let k = score.kid, let s = score.kidStd {
                print(String(format: "KID: %.6f ± %.6f  (%d subsets of %d)", k, s, score.kidSubsets ?? 0, score.kidSubsetSize ?? 0))
            }
        }
    }

    /// Progress on stderr at most every 2 s (and at the end), with images/s and the time left; a new image set (the
    /// count going back, or another total) restarts the clock.
    static func progressPrinter(_ log: @escaping (String) -> Void) -> (Int, Int) -> Void {
        var start = Date()
        var last = Date.distantPast, previous = (done: Int.max, total: 0)
        return { done, total in
            if done < previous.done || total != previous.total { start = Date().addingTimeInterval(-1e-3); last = .distantPast }
            previous = (done, total)
            let now = Date()
            guard now.timeIntervalSince(last) >= 2 || done == total else { return }
            last = now
            let elapsed = now.timeIntervalSince(start), rate = Double(done) / max(elapsed, 1e-9)
            log(String(format: "fid: %d/%d images, %.2f images/s, %.0f s left", done, total, rate, Double(total - done) / max(rate, 1e-9)))
        }
    }
}
