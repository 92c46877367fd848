// The "cost" part: per model, analytic true FLOPs and parameters (ModelCost) beside measured latency statistics,
// throughput, memory and a per-phase time split, for the profile's scenarios:
//   single_stream  one query at a time, back to back (latency);
//   offline        all `queries` queries issued at once: one forward of queries·batch images, throughput =
//                  images / wall time (repeated min_iterations times);
//   server         Poisson arrivals at `target_qps`, served in order by one engine; latency includes queueing;
//                  with `target_latency_ms` a cell is valid when p99 ≤ the bound (unknown when too few queries for p99).
// A query is one forward of `batch` images (2·batch with classifier-free guidance). Latency statistics (median, IQR,
// bootstrap interval of the median, tails only with enough queries) come from LatencySummary. MoE against dense is
// measured separately as paired, alternating single-stream queries (CostPairing.swift); the roofline is the
// physical peak measured once per run (Roofline.swift).
import DiT
import Diffusion
import Foundation
import Metrics
import Tensor

public struct CostCell: Codable, Sendable {
    public var model: String
    public var name: String
    public var kind: String
    public var execution: String
    public var batch: Int
    public var scenario: String
    /// Arithmetic of the large GEMMs ("fp32", "bf16"); absent in documents of schema 1.
    public var precision: String?
    public var imagesPerQuery: Int
    public var gflopPerQuery: Double
    public var totalParameters: Int
    public var activatedParameters: Int
    public var latency: LatencySummary
    public var imagesPerSecond: Double
    /// GFLOP per second of the median query (server: GFLOP served per wall second).
    public var gflopsAchieved: Double
    /// gflopsAchieved / the run's roofline. Above 1 is impossible for a true ceiling: `rooflineWarning` says so.
    public var fractionOfRoofline: Double
    public var rooflineWarning: String?
    public var residentMiB: Double
    public var peakResidentMiB: Double
    /// Milliseconds per query by phase (PhaseProfile.Phase raw values).
    public var phaseMsPerQuery: [String: Double]
    /// Activation shard codec of cluster cells (e.g. "f32+shuffle+auto"); nil in-process.
    public var codec: String?
    /// Server cells with `target_latency_ms`: whether p99 met the bound (LoadGen's VALID); nil without p99.
    public var meetsLatencyBound: Bool?

    public var executionLabel: String { codec.map { "\(execution) (\($0))" } ?? execution }
}

/// One query of a cell, its inputs prepared once: a forward of `images` images (with CFG: conditional + null).
struct CostQuery {
    let model: DiTModel
    let cfg: Bool
    let images: Int
    let x: FloatBuffer, t: FloatBuffer, y: TypedBuffer<Int32>, out: FloatBuffer

    /// `requested`: images asked for (doubled by CFG); inputs are seeded standard normals at t = 500.
    init(model: DiTModel, requested: Int, cfg: Bool, seed: UInt64) {
        let c = model.config
        self.model = model
        self.cfg = cfg
        images = cfg ? 2 * requested : requested
        let imageSize = c.inChannels * c.inputSize * c.inputSize
        var g = Xoshiro256(seed: seed)
        x = FloatBuffer((0..<(images * imageSize)).map { _ in Float(g.normal()) })
        t = FloatBuffer([Float](repeating: 500, count: images))
        y = TypedBuffer<Int32>(count: images, repeating: Int32(c.nullClass))
        for b in 0..<requested { y.pointer[b] = Int32((b * 97 + 207) % c.numClasses) }
        if !cfg { for b in 0..<images { y.pointer[b] = Int32((b * 97 + 207) % c.numClasses) } }
        out = FloatBuffer(count: images * c.outChannels * c.inputSize * c.inputSize)
    }

    func run() throws {
        if cfg {
            try model.forwardWithCFG(x: x.pointer, t: t.pointer, y: y.pointer, batch: images, cfgScale: 1.5, out: out.pointer)
        } else {
            try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: images, out: out.pointer)
        }
    }
}

struct CostRunner {
    let suite: CostSuite
    let run: RunSettings
    let progress: Progress
    let roofline: RooflineRecord
    let precision: String

    /// Measures one (model, execution, batch, scenario) cell.
    func measure(model: DiTModel, id: String, execution: ExecutionMode, codec: String?, batch: Int, scenario: Scenario,
                 seed: UInt64) throws -> CostCell {
        let c = model.config
        // Offline (LoadGen's meaning): every query of the run is issued at once, i.e. one forward of all images.
        let requested = scenario == .offline ? batch * suite.offlineQueries : batch
        let q = CostQuery(model: model, requested: requested, cfg: suite.cfg, seed: seed)
        let images = q.images
        for _ in 0..<run.warmupIterations { try q.run() }
        model.profile = PhaseProfile()
        var recorder = LatencyRecorder()
        let wallStart = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - wallStart) / 1e9 }
        var queries = 0
        switch scenario {
        case .singleStream:
            while true {
                try recorder.measure { try q.run() }
                queries += 1
                let e = elapsed()
                if queries >= run.minIterations && e >= run.minDurationSeconds { break }
                if let maxD = run.maxDurationSeconds, e >= maxD { break }
            }
        case .offline:
            for _ in 0..<run.minIterations { try recorder.measure { try q.run() }; queries += 1 }
        case .server:
            let qps = suite.serverTargetQPS ?? 1, duration = suite.serverDurationSeconds ?? 10
            var arrivals = Xoshiro256(seed: seed ^ 0xA5A5)
            var next = 0.0
            while next < duration {
                let now = elapsed()
                if now < next { usleep(useconds_t((next - now) * 1e6)) }
                try q.run()
                recorder.record(seconds: elapsed() - next)
                queries += 1
                next += -log(arrivals.uniform()) / qps  // exponential inter-arrival times
            }
        }
        let wall = elapsed()
        if let reporting = model.executor as? PhaseReportingExecutor, model.profile != nil {
            reporting.movePhases(into: &model.profile!)
        }
        let profile = model.profile ?? PhaseProfile()
        model.profile = nil
        let summary = recorder.summary(wallSeconds: wall, itemsPerQuery: requested)
        let cost = ModelCost(ModelShape(c))
        let gflop = cost.trueGFLOPs * Double(images)
        let mem = Memory.residentMiB()
        var phases: [String: Double] = [:]
        for (p, ns) in profile.nanoseconds { phases[p.rawValue] = Double(ns) / 1e6 / Double(max(queries, 1)) }
        let rate = scenario == .server ? gflop * Double(queries) / wall : gflop / (summary.medianMs / 1000)
        let fraction = rate / roofline.gflops
        return CostCell(model: id, name: c.name, kind: c.isMoE ? "MoE" : "dense", execution: execution.rawValue, batch: batch,
                        scenario: scenario.rawValue, precision: precision, imagesPerQuery: images, gflopPerQuery: gflop,
                        totalParameters: cost.totalParameters, activatedParameters: cost.activatedParameters,
                        latency: summary, imagesPerSecond: Double(queries * requested) / wall,
                        gflopsAchieved: rate, fractionOfRoofline: fraction,
                        rooflineWarning: fraction > 1 ? roofline.overWarning(rate: rate) : nil,
                        residentMiB: mem.now, peakResidentMiB: mem.peak, phaseMsPerQuery: phases, codec: codec,
                        meetsLatencyBound: scenario == .server ? suite.serverTargetLatencyMs.flatMap { b in summary.p99Ms.map { $0 <= b } } : nil)
    }
}

/// The cost part's `data` (schema 2): the cells and the paired comparisons.
public struct CostData: Codable, Sendable {
    public var cells: [CostCell]
    public var pairs: [PairedComparison]
    public var roofline: RooflineRecord?
}

enum CostTables {
    static func ms(_ v: Double?) -> JSONValue { v.map { .number($0) } ?? .null }

    static func cells(_ cells: [CostCell], roofline: RooflineRecord) -> ResultTable {
        let n = { (d: Double) in JSONValue.number(d) }
        return ResultTable(
            id: "cost_cells", title: "Latency, throughput and compute rate per model, execution, batch and scenario",
            columns: [.init("model"), .init("execution"), .init("batch"), .init("scenario"), .init("n"),
                      .init("median", unit: "ms"), .init("IQR", unit: "ms"), .init("95% CI", unit: "ms"), .init("median 95% low", unit: "ms"),
                      .init("median 95% high", unit: "ms"), .init("p90", unit: "ms"), .init("p99", unit: "ms"),
                      .init("kind"), .init("precision"),
                      .init("params total", unit: "M"), .init("params activated", unit: "M"), .init("true GFLOP/query", unit: "GFLOP"),
                      .init("throughput", unit: "images/s"), .init("rate", unit: "GFLOP/s"), .init("of roofline", unit: "fraction"),
                      .init("roofline check"), .init("RSS", unit: "MiB"), .init("process peak RSS so far", unit: "MiB"),
                      .init("p99 within bound"), .init("left out")],
            rows: cells.map { c in
                [.string(c.name), .string(c.executionLabel), n(Double(c.batch)), .string(c.scenario), n(Double(c.latency.count)),
                 n(c.latency.medianMs), n(c.latency.iqrMs),
                 .string(c.latency.medianInterval.map { String(format: "%.4g–%.4g", $0.lower, $0.upper) } ?? "—"),
                 ms(c.latency.medianInterval?.lower), ms(c.latency.medianInterval?.upper),
                 ms(c.latency.p90Ms), ms(c.latency.p99Ms), .string(c.kind), c.precision.map { .string($0) } ?? .null,
                 n(Double(c.totalParameters) / 1e6), n(Double(c.activatedParameters) / 1e6), n(c.gflopPerQuery),
                 n(c.imagesPerSecond), n(c.gflopsAchieved), n(c.fractionOfRoofline),
                 .string(c.rooflineWarning == nil ? "ok" : "ABOVE ROOFLINE: measurement problem"), n(c.residentMiB), n(c.peakResidentMiB),
                 c.meetsLatencyBound.map { .bool($0) } ?? .null, .string(c.latency.omitted.joined(separator: "; "))]
            },
            note: "Roofline: \(roofline.description). "
                + "batch = images per query; n = timed queries; median and IQR of their latencies; 95% CI = percentile bootstrap interval of the median (also as numbers in the low/high columns) (2000 resamples, fixed seed; needs ≥ 5 queries). "
                + "p90 / p99 are left out (empty) below 100 / 1000 queries: with fewer, they are the last one or two order statistics. "
                + "A query is one forward of `batch` images (doubled by classifier-free guidance); offline issues all its queries as one forward. Server latency includes queueing; its rate is GFLOP served per wall second. RSS is the suite process's (all models loaded so far).")
    }

    /// The first cell of each model, in order.
    static func models(_ cells: [CostCell]) -> [CostCell] {
        var seen = Set<String>()
        return cells.filter { seen.insert($0.model).inserted }
    }

    static func phases(_ cells: [CostCell]) -> ResultTable {
        let order = PhaseProfile.Phase.allCases.map(\.rawValue)
        let used = order.filter { p in cells.contains { ($0.phaseMsPerQuery[p] ?? 0) > 0 } }
        return ResultTable(
            id: "cost_phases", title: "Time per query by phase (single-stream cells)",
            columns: [.init("model"), .init("execution"), .init("batch", unit: "images")] + used.map { .init($0, unit: "ms") },
            rows: cells.filter { $0.scenario == Scenario.singleStream.rawValue }.map { c in
                [.string(c.name), .string(c.executionLabel), .number(Double(c.batch))] + used.map { .number(c.phaseMsPerQuery[$0] ?? 0) }
            },
            note: "attention includes the qkv and output projections; routed_experts is the executor's compute (in the cluster: the workers' time as the coordinator sees it, minus codec, transfer and waiting, which are split out).")
    }

    /// MoE against each dense baseline from paired queries, and cluster against in-process from the cells.
    static func comparisons(_ pairs: [PairedComparison]) -> ResultTable {
        let n = { (d: Double) in JSONValue.number(d) }
        return ResultTable(
            id: "cost_comparisons", title: "Side by side (single stream): latency ratios of the first to the second, with 95% intervals",
            columns: [.init("comparison"), .init("batch", unit: "images"), .init("method"), .init("n"),
                      .init("latency", unit: "ratio"), .init("95% low"), .init("95% high"),
                      .init("activated params", unit: "ratio"), .init("true FLOPs", unit: "ratio")],
            rows: pairs.map { p in
                [.string(p.label), n(Double(p.batch)), .string(p.method), n(Double(p.count)), n(p.ratio),
                 ms(p.interval?.lower), ms(p.interval?.upper), n(p.activatedParameterRatio), n(p.flopRatio)]
            },
            note: "paired: queries of the two models alternate (A B, B A, …) and the ratio is the median of the per-pair ratios, with a percentile bootstrap over pairs (2000 resamples, fixed seed). unpaired (cluster against in-process, measured at different times): ratio of the cells' medians, bootstrap resampling each side. No interval below 5 pairs or queries. A ratio below 1 means the first costs less.")
    }
}
