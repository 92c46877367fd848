// The paper's routing claims (DiT-MoE, analysis of expert specialisation) turned into verdicts with the statistic
// behind each, from the routing counts of a real sampling run.
//
// Per MoE layer and factor F ∈ {step, position, class}: the mutual information I(E; F) between the expert chosen in a
// top-k slot and F, its permutation null (F's labels shuffled over the counted slots) and p-value, and the excess
// (I − null mean)/H(E): the share of expert-choice entropy F explains beyond chance.
//
// Verdicts (thresholds fixed here, not tuned to results):
//   "depends on step" / "depends on position": holds when p < 0.01 in at least half the layers and the median
//     excess ≥ 0.01; weak when p < 0.01 in some layer but the effect is smaller; does not hold otherwise.
//   "hardly depends on class": holds when the median class excess < 0.01, or below a quarter of the smaller of
//     the step and position excesses; weak when it is below that smaller excess; does not hold otherwise.
//   "deeper layers spread routing more evenly": Spearman correlation of layer index with the layer's normalised
//     expert entropy: holds ≥ 0.5, weak in (0, 0.5), does not hold ≤ 0 (needs ≥ 3 layers).
import Foundation
import Metrics

public struct RoutingVerdict: Codable, Equatable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        case holds
        case weak
        case doesNotHold = "does not hold"
    }
    public var claim: String
    public var verdict: Outcome
    public var statistic: String
}

public enum RoutingVerdicts {
    public static let factors = ["step", "position", "class"]

    /// Dependence of each layer's expert choice on step, position and class.
    public static func dependences(_ recorder: ExpertLoadRecorder, seed: UInt64 = 0) -> [RoutingDependence] {
        var out: [RoutingDependence] = []
        // 199 permutations: the smallest attainable p is 1/200 = 0.005, below the verdicts' 0.01. Each permutation
        // visits every counted slot once (a 50-step run of 40 images at 16 tokens, top-2: 1.3·10⁵ slots per layer).
        let perms = 199
        for layer in 0..<recorder.dims.layers {
            for factor in factors {
                let table: CountTable
                switch factor {
                case "step": table = recorder.stepExpertTable(layer: layer)
                case "position": table = recorder.positionExpertTable(layer: layer)
                default: table = recorder.classExpertTable(layer: layer)
                }
                guard table.rows > 1 else { continue }
                out.append(RoutingDependence(factor: factor, layer: layer, table: table.values, rows: table.rows,
                                             experts: table.columns, permutations: perms, seed: seed &+ UInt64(layer)))
            }
        }
        return out
    }

    public static func verdicts(_ deps: [RoutingDependence], normalizedEntropyPerLayer: [Double]) -> [RoutingVerdict] {
        func medianExcess(_ f: String) -> Double? {
            let v = deps.filter { $0.factor == f }.map(\.excess)
            return v.isEmpty ? nil : median(v)
        }
        func significant(_ f: String) -> (Int, Int) {
            let d = deps.filter { $0.factor == f }
            return (d.filter { $0.pValue < 0.01 }.count, d.count)
        }
        var out: [RoutingVerdict] = []
        for f in ["step", "position"] {
            guard let ex = medianExcess(f) else { continue }
            let (sig, n) = significant(f)
            let verdict: RoutingVerdict.Outcome = 2 * sig >= n && ex >= 0.01 ? .holds : sig > 0 ? .weak : .doesNotHold
            out.append(RoutingVerdict(claim: "Expert choice depends on the \(f == "step" ? "denoising step" : "token position")",
                                      verdict: verdict,
                                      statistic: String(format: "median excess I/H(E) %.4f; p < 0.01 in %d of %d layers", ex, sig, n)))
        }
        if let cls = medianExcess("class") {
            let other = [medianExcess("step"), medianExcess("position")].compactMap { $0 }.min() ?? 0
            let verdict: RoutingVerdict.Outcome = cls < 0.01 || cls < 0.25 * other ? .holds : cls < other ? .weak : .doesNotHold
            let (sig, n) = significant("class")
            out.append(RoutingVerdict(claim: "Expert choice hardly depends on the class", verdict: verdict,
                                      statistic: String(format: "median excess %.4f vs %.4f for the weaker of step/position; p < 0.01 in %d of %d layers", cls, other, sig, n)))
        }
        if normalizedEntropyPerLayer.count >= 3 {
            let rho = spearman(Array(0..<normalizedEntropyPerLayer.count).map(Double.init), normalizedEntropyPerLayer)
            out.append(RoutingVerdict(claim: "Deeper layers spread routing more evenly", verdict: rho >= 0.5 ? .holds : rho > 0 ? .weak : .doesNotHold,
                                      statistic: String(format: "Spearman ρ(layer, normalised entropy) = %.2f over %d layers", rho, normalizedEntropyPerLayer.count)))
        }
        return out
    }

    /// Spearman rank correlation (average ranks for ties).
    static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        func ranks(_ v: [Double]) -> [Double] {
            let order = v.indices.sorted { v[$0] < v[$1] }
            var r = [Double](repeating: 0, count: v.count)
            var i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
                for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
                i = j + 1
            }
            return r
        }
        let ra = ranks(a), rb = ranks(b), n = Double(a.count)
        let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
        var num = 0.0, da = 0.0, db = 0.0
        for i in 0..<a.count { num += (ra[i] - ma) * (rb[i] - mb); da += (ra[i] - ma) * (ra[i] - ma); db += (rb[i] - mb) * (rb[i] - mb) }
        return da > 0 && db > 0 ? num / (da * db).squareRoot() : 0
    }
}
