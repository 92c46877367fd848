// The curves part of `moebench compare`: sample quality per shared curves cell of two results directories.
//
// Cells are the rows of `curves/curves.jsonl` (the testbed, shown as model "testbed") and `curves/<model>/curves.jsonl`
// (trained models), one per (model, integrator, mode, budget, seed) — more precisely per CurveRow.key (score source,
// sample count, chains and DLG settings too: FD's small-n bias depends on the sample count, so cells at different
// counts are not compared). The floor rows (real data at the same n) are cells too: a change there means the
// instrument changed, which makes every other ratio suspect. The value compared is FID-digits when both rows have it
// (trained models), the FD otherwise; lower is better.
//
// B/A's 95% interval, best method first:
//   paired  both runs stored the cell's samples (curves/<model>/samples/<cell>.safetensors, trained models only)
//           and the shipped FID-digits instruments reproduce both stored values: B bootstrap resamples of the
//           sample indices, the same indices drawn from A's and B's samples, each giving FD_B*/FD_A* against the
//           same reference. Same seed, same sampler: sample i of A and of B start from the same noise, so resampling
//           them together cancels the noise both share (common random numbers; identical runs give exactly 1,
//           [1, 1]). Where a change breaks that pairing the pairs are independent and the joint resample is still a
//           valid bootstrap of each side. FD* carries a larger small-n bias than FD, so — as for the cells' own
//           intervals — the percentile interval of log(FD_B*/FD_A*) is shifted by the bootstrap bias estimate:
//           [B/A · exp(q₂.₅ − m), B/A · exp(q₉₇.₅ − m)], m the mean of the log ratios.
//   rows    otherwise (the testbed stores no samples; older runs; a changed instrument): from the two rows' own 95%
//           intervals, independent runs, on the log scale, each side's half-widths combined in quadrature:
//           upper = B/A · exp(√(ln(B⁺/B)² + ln(A/A⁻)²)), lower = B/A · exp(−√(ln(B/B⁻)² + ln(A⁺/A)²)). This
//           treats each interval as a normal one on the log scale (an approximation); when A's lower end is 0 the
//           ratio is unbounded above and there is no interval (verdict at most "unclear").
// Both bootstraps treat a cell's samples as exchangeable, as the cells' own intervals do: class labels cycle over
// the batch (which widens a resample's spread a little) and a DLG chain's successive samples are correlated (which
// narrows it).
import DiT
import Foundation
import Metrics
import Tensor
import Training

public enum CurvesComparison {
    /// Bootstrap resamples of the paired interval (each costs two Fréchet distances; the cells' own intervals use
    /// the same count).
    public static let pairedResamples = 200

    /// One curves cell of a run: its row and where its samples would be.
    struct Cell {
        var model: String
        var row: CurveRow
        var samplesPath: String?
        var key: String { "curves|\(model)|\(row.key)" }
        var name: String {
            row.integrator == "floor" ? "\(model) reference s\(row.seed)"
                : "\(model) \(row.integrator) \(row.dlg ? "DLG" : "vanilla") b\(row.budget) s\(row.seed)"
        }
        /// FID-digits when `useFID`, else FD, with the row's interval.
        func value(useFID: Bool) -> (value: Double, lower: Double?, upper: Double?) {
            useFID ? (row.fidDigits!, row.fidDigitsLower, row.fidDigitsUpper) : (row.fd, row.fdLower, row.fdUpper)
        }
    }

    /// The curves cells of a results directory (none when it has no curves).
    static func cells(_ dir: URL) throws -> [Cell] {
        let curves = dir.appendingPathComponent("curves")
        var out: [Cell] = []
        func read(_ d: URL, model: String, samples: Bool) throws {
            guard FileManager.default.fileExists(atPath: d.appendingPathComponent("curves.jsonl").path) else { return }
            let store: CurveStore
            do { store = try CurveStore(directory: d.path) } catch let e as CurveStoreError { throw ResultsError.io(path: d.path, reason: e.description) }
            for r in store.rows {
                let p = d.appendingPathComponent("samples/\(CellSamples.name(r)).safetensors").path
                out.append(Cell(model: model, row: r, samplesPath: samples && FileManager.default.fileExists(atPath: p) ? p : nil))
            }
        }
        try read(curves, model: "testbed", samples: false)
        let subs = (try? FileManager.default.contentsOfDirectory(atPath: curves.path)) ?? []
        for s in subs.sorted() where s != "samples" {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: curves.appendingPathComponent(s).path, isDirectory: &isDir), isDir.boolValue {
                try read(curves.appendingPathComponent(s), model: s, samples: true)
            }
        }
        return out
    }

    public static func compare(_ dirA: URL, _ dirB: URL, threshold: Double) throws -> (cells: [ComparedCell], onlyInA: [String], onlyInB: [String]) {
        let ca = try cells(dirA), cb = try cells(dirB)
        let byKey = Dictionary(cb.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let keysA = Set(ca.map(\.key))
        var instruments: Instruments?
        var out: [ComparedCell] = []
        for x in ca {
            guard let y = byKey[x.key] else { continue }
            let useFID = x.row.fidDigits != nil && y.row.fidDigits != nil
            let va = x.value(useFID: useFID), vb = y.value(useFID: useFID)
            let ratio = vb.value / va.value
            var interval: BootstrapInterval?, method: String?, note: String?, unbounded = false
            if useFID, let pa = x.samplesPath, let pb = y.samplesPath {
                if instruments == nil { instruments = try Instruments() }
                switch try instruments!.paired(pa, pb, storedA: va.value, storedB: vb.value, seed: UInt64(x.row.seed)) {
                case .interval(let i): interval = i; method = "paired"
                case .unusable(let why): note = why
                }
            }
            if interval == nil {
                let r = rowsInterval(a: va, b: vb)
                interval = r.interval
                method = r.interval == nil ? nil : "rows"
                if r.unbounded { unbounded = true; note = [note, "A's interval reaches 0: B/A is unbounded above"].compactMap { $0 }.joined(separator: "; ") }
                if r.interval == nil && !r.unbounded && note == nil { note = "a row has no interval" }
            }
            out.append(ComparedCell(part: "curves", cell: x.name, key: x.key, unit: useFID ? "FID-digits" : "FD", a: va.value, b: vb.value,
                                    aCount: x.row.samples, bCount: y.row.samples, ratio: ratio, interval: interval,
                                    verdict: RunComparison.verdict(ratio: ratio, interval: interval, threshold: threshold, unbounded: unbounded),
                                    aNFE: x.row.nfe, bNFE: y.row.nfe, method: method, note: note))
        }
        return (out, ca.filter { byKey[$0.key] == nil }.map { "curves: \($0.name)" },
                cb.filter { !keysA.contains($0.key) }.map { "curves: \($0.name)" })
    }

    /// B/A's interval from the rows' own intervals (see the file comment); nil without intervals or when A's
    /// lower end is 0 (`unbounded`).
    static func rowsInterval(a: (value: Double, lower: Double?, upper: Double?), b: (value: Double, lower: Double?, upper: Double?))
        -> (interval: BootstrapInterval?, unbounded: Bool) {
        guard let al = a.lower, let au = a.upper, let bl = b.lower, let bu = b.upper, a.value > 0, b.value > 0 else { return (nil, false) }
        guard al > 0 else { return (nil, true) }
        let ratio = b.value / a.value
        func sq(_ x: Double) -> Double { x * x }
        let up = (sq(log(bu / b.value)) + sq(log(a.value / al))).squareRoot()
        // B's lower end 0: the ratio's lower end is 0.
        let lower = bl > 0 ? ratio * exp(-(sq(log(b.value / bl)) + sq(log(au / a.value))).squareRoot()) : 0
        return (BootstrapInterval(lower: lower, upper: ratio * exp(up), confidence: 0.95, resamples: 0, seed: 0), false)
    }

    /// The shipped FID-digits feature net and held-out reference, loaded once per comparison.
    final class Instruments {
        let fid: DigitsFID
        var frechet: FixedReferenceFrechet
        init() throws {
            fid = try DigitsFID.bundled()
            frechet = try FixedReferenceFrechet(reference: fid.featureReference)
        }

        enum Outcome { case interval(BootstrapInterval), unusable(String) }

        /// Stored values are reproduced when the recomputed FD is within this relative difference.
        static let reproduceTolerance = 1e-4

        func features(_ path: String) throws -> [Float] {
            let images = try SafetensorsFile(path: path).floats("samples")   // [n, 1, 8, 8] in [0, 1] pixels
            guard images.count % DigitsDataset.imageSize == 0, images.count >= 2 * DigitsDataset.imageSize else {
                throw ResultsError.badDocument(path: path, reason: "\"samples\" holds \(images.count) values, not ≥ 2 images of \(DigitsDataset.imageSize) pixels")
            }
            return fid.features(images.map { 2 * $0 - 1 })
        }

        func paired(_ pathA: String, _ pathB: String, storedA: Double, storedB: Double, seed: UInt64) throws -> Outcome {
            let fa = try features(pathA), fb = try features(pathB)
            let d = fid.featureNet.featureWidth
            guard fa.count == fb.count else { return .unusable("the runs stored different sample counts") }
            let fdA = try frechet.distance(fa), fdB = try frechet.distance(fb)
            for (fd, stored, run) in [(fdA, storedA, "A"), (fdB, storedB, "B")] where abs(fd - stored) > Self.reproduceTolerance * max(stored, 1e-12) {
                return .unusable(String(format: "run %@'s samples give FID-digits %.6g, its row says %.6g (other feature net or reference?)", run, fd, stored))
            }
            let logRatio = log(fdB / fdA)
            if fa == fb {
                return .interval(BootstrapInterval(lower: 1, upper: 1, confidence: 0.95, resamples: pairedResamples, seed: seed))
            }
            // The BLAS calls here are on 64×64 matrices: OpenBLAS's threads only add synchronisation (on a busy
            // machine, most of the time). One thread while bootstrapping, the caller's setting restored after.
            let threads = BLASThreads.current
            BLASThreads.set(1)
            defer { BLASThreads.set(threads) }
            let n = fa.count / d
            var xa = [Float](repeating: 0, count: fa.count), xb = xa
            var failure: Error?
            let reps = Bootstrap.replicates(count: n, resamples: pairedResamples, seed: BootstrapPolicy.seed ^ seed) { idx in
                for (r, i) in idx.enumerated() {
                    for k in 0..<d { xa[r * d + k] = fa[i * d + k]; xb[r * d + k] = fb[i * d + k] }
                }
                do { return log(try frechet.distance(xb) / frechet.distance(xa)) } catch { failure = error; return .nan }
            }
            if let failure { throw failure }
            let mean = reps.reduce(0, +) / Double(reps.count)
            let lo = Quantiles.ofSorted(reps, 0.025), hi = Quantiles.ofSorted(reps, 0.975)
            return .interval(BootstrapInterval(lower: exp(logRatio + lo - mean), upper: exp(logRatio + hi - mean), confidence: 0.95,
                                               resamples: pairedResamples, seed: BootstrapPolicy.seed ^ seed))
        }
    }
}
