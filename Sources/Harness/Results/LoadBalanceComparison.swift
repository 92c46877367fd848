// The load-balance part of `moebench compare`: the headline numbers of `report.overall` (Metrics OverallBalance)
// when both runs have them. Balancedness (Σ_l mean_l / Σ_l max_l, in (0, 1], higher is better) of experts, workers
// and NUMA nodes is judged with the cost threshold: worse when A/B > 1 + threshold. MaxVio (mean and worst layer,
// ≥ 0) is shown but not judged: per layer it is 1/balancedness − 1, and as a ratio of numbers near 0 it exaggerates.
// The counts come from one deterministic routing pass, so there is no interval: identical code and seeds give
// identical numbers.
import Foundation
import Metrics

enum LoadBalanceComparison {
    struct Entry { var name: String; var unit: String; var value: Double; var judged: Bool }

    static func entries(_ doc: ResultsDocument, path: String) throws -> [Entry] {
        guard let part = doc.parts.first(where: { $0.id == "load_balance" }), let data = part.data,
              case .object(let fields) = data, let report = fields["report"] else { return [] }
        let overall: OverallBalance
        do {
            overall = try report.decode(LoadBalanceReport.self).overall
        } catch {
            let file = URL(fileURLWithPath: path).appendingPathComponent("results.json").path
            throw ResultsError.badDocument(path: file, reason: "the load_balance part's data.report cannot be read (\(error))")
        }
        var out = [Entry(name: "expert balancedness", unit: "balancedness", value: overall.expertBalancedness, judged: true)]
        if let w = overall.workerBalancedness { out.append(Entry(name: "worker balancedness", unit: "balancedness", value: w, judged: true)) }
        if let n = overall.numaBalancedness { out.append(Entry(name: "NUMA balancedness", unit: "balancedness", value: n, judged: true)) }
        out.append(Entry(name: "mean MaxVio", unit: "MaxVio", value: overall.meanMaxVio, judged: false))
        out.append(Entry(name: "worst-layer MaxVio", unit: "MaxVio", value: overall.worstMaxVio, judged: false))
        return out
    }

    static func compare(_ docA: ResultsDocument, path pathA: String, _ docB: ResultsDocument, path pathB: String,
                        threshold: Double) throws -> (cells: [ComparedCell], onlyInA: [String], onlyInB: [String]) {
        let ea = try entries(docA, path: pathA), eb = try entries(docB, path: pathB)
        let byName = Dictionary(eb.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let namesA = Set(ea.map(\.name))
        var cells: [ComparedCell] = []
        for x in ea {
            guard let y = byName[x.name] else { continue }
            let ratio = y.value / x.value
            let verdict: String
            if !x.judged {
                verdict = "info"
            } else {
                // Higher is better: judge A/B, the factor by which B is worse, with the lower-is-better rule.
                verdict = RunComparison.verdict(ratio: x.value / y.value, interval: nil, threshold: threshold)
            }
            cells.append(ComparedCell(part: "load balance", cell: x.name, key: "load_balance|\(x.name)", unit: x.unit, a: x.value,
                                      b: y.value, aCount: 0, bCount: 0, ratio: ratio, interval: nil, verdict: verdict,
                                      higherIsBetter: x.judged ? true : nil,
                                      note: "one deterministic routing pass: no interval"))
        }
        return (cells, ea.filter { byName[$0.name] == nil }.map { "load balance: \($0.name)" },
                eb.filter { !namesA.contains($0.name) }.map { "load balance: \($0.name)" })
    }
}
