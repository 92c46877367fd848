// The "cost" part: per model, analytic true FLOPs and parameters (ModelCost, spec ditmoe §2.3–2.4) beside measured
// latency percentiles, throughput, memory and a per-phase time split, for the profile's scenarios:
//   single_stream  one query at a time, back to back (latency);
//   offline        all `queries` queries issued at once: one forward of queries·batch images, throughput =
//                  images / wall time (repeated min_iterations times);
//   server         Poisson arrivals at `target_qps`, served in order by one engine; latency includes queueing;
//                  with `target_latency_ms` a cell is valid when p99 ≤ the bound.
// A query is one forward of `batch` images (2·batch with classifier-free guidance). Baselines measured in the same
// run: the sgemm roofline, and each MoE model against the dense baselines and against itself in-process.
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
    public var imagesPerQuery: Int
    public var gflopPerQuery: Double
    public var totalParameters: Int
    public var activatedParameters: Int
    public var latency: LatencySummary
    public var imagesPerSecond: Double
    public var gflopsAchieved: Double
    public var fractionOfRoofline: Double
    public var residentMiB: Double
    public var peakResidentMiB: Double
    /// Milliseconds per query by phase (PhaseProfile.Phase raw values).
    public var phaseMsPerQuery: [String: Double]
    /// Activation shard codec of cluster cells (e.g. "f32+shuffle+auto"); nil in-process.
    public var codec: String?
    /// Server cells with `target_latency_ms`: whether p99 met the bound (LoadGen's VALID).
    public var meetsLatencyBound: Bool?

    public var executionLabel: String { codec.map { "\(execution) (\($0))" } ?? execution }
}

struct CostRunner {
    let suite: CostSuite
    let run: RunSettings
    let progress: Progress
    let roofline: Double

    /// Measures one (model, execution, batch, scenario) cell.
    func measure(model: DiTModel, id: String, execution: ExecutionMode, codec: String?, batch: Int, scenario: Scenario,
                 seed: UInt64) throws -> CostCell {
        let c = model.config
        // Offline (LoadGen's meaning): every query of the run is issued at once, i.e. one forward of all images.
        let requested = scenario == .offline ? batch * suite.offlineQueries : batch
        let images = suite.cfg ? 2 * requested : requested
        let imageSize = c.inChannels * c.inputSize * c.inputSize
        var g = Xoshiro256(seed: seed)
        let x = FloatBuffer((0..<(images * imageSize)).map { _ in Float(g.normal()) })
        let t = FloatBuffer([Float](repeating: 500, count: images))
        let y = TypedBuffer<Int32>(count: images, repeating: Int32(c.nullClass))
        for b in 0..<requested { y.pointer[b] = Int32((b * 97 + 207) % c.numClasses) }
        if !suite.cfg { for b in 0..<images { y.pointer[b] = Int32((b * 97 + 207) % c.numClasses) } }
        let out = FloatBuffer(count: images * c.outChannels * c.inputSize * c.inputSize)
        func query() throws {
            if suite.cfg {
                try model.forwardWithCFG(x: x.pointer, t: t.pointer, y: y.pointer, batch: images, cfgScale: 1.5, out: out.pointer)
            } else {
                try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: images, out: out.pointer)
            }
        }
        for _ in 0..<run.warmupIterations { try query() }
        model.profile = PhaseProfile()
        var recorder = LatencyRecorder()
        let wallStart = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - wallStart) / 1e9 }
        var queries = 0
        switch scenario {
        case .singleStream:
            while true {
                try recorder.measure { try query() }
                queries += 1
                let e = elapsed()
                if queries >= run.minIterations && e >= run.minDurationSeconds { break }
                if let maxD = run.maxDurationSeconds, e >= maxD { break }
            }
        case .offline:
            for _ in 0..<run.minIterations { try recorder.measure { try query() }; queries += 1 }
        case .server:
            let qps = suite.serverTargetQPS ?? 1, duration = suite.serverDurationSeconds ?? 10
            var arrivals = Xoshiro256(seed: seed ^ 0xA5A5)
            var next = 0.0
            while next < duration {
                let now = elapsed()
                if now < next { usleep(useconds_t((next - now) * 1e6)) }
                try query()
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
        let busy = summary.meanMs / 1000
        return CostCell(model: id, name: c.name, kind: c.isMoE ? "MoE" : "dense", execution: execution.rawValue, batch: batch,
                        scenario: scenario.rawValue, imagesPerQuery: images, gflopPerQuery: gflop,
                        totalParameters: cost.totalParameters, activatedParameters: cost.activatedParameters,
                        latency: summary, imagesPerSecond: Double(queries * requested) / wall,
                        gflopsAchieved: scenario == .server ? gflop * Double(queries) / wall : gflop / busy,
                        fractionOfRoofline: (scenario == .server ? gflop * Double(queries) / wall : gflop / busy) / roofline,
                        residentMiB: mem.now, peakResidentMiB: mem.peak, phaseMsPerQuery: phases, codec: codec,
                        meetsLatencyBound: scenario == .server ? suite.serverTargetLatencyMs.map { summary.p99Ms <= $0 } : nil)
    }
}

enum CostTables {
    static func cells(_ cells: [CostCell], roofline: Double) -> ResultTable {
        let n = { (d: Double) in JSONValue.number(d) }
        return ResultTable(
            id: "cost_cells", title: "Latency, throughput and compute rate per model, execution, batch and scenario",
            columns: [.init("model"), .init("kind"), .init("execution"), .init("batch", unit: "images"), .init("scenario"),
                      .init("params total", unit: "M"), .init("params activated", unit: "M"), .init("true GFLOP/query", unit: "GFLOP"),
                      .init("queries"), .init("p50", unit: "ms"), .init("p90", unit: "ms"), .init("p99", unit: "ms"),
                      .init("throughput", unit: "images/s"), .init("rate", unit: "GFLOP/s"), .init("of roofline", unit: "fraction"),
                      .init("RSS", unit: "MiB"), .init("process peak RSS so far", unit: "MiB"), .init("p99 within bound")],
            rows: cells.map { c in
                [.string(c.name), .string(c.kind), .string(c.executionLabel), n(Double(c.batch)), .string(c.scenario),
                 n(Double(c.totalParameters) / 1e6), n(Double(c.activatedParameters) / 1e6), n(c.gflopPerQuery),
                 n(Double(c.latency.count)), n(c.latency.p50Ms), n(c.latency.p90Ms), n(c.latency.p99Ms),
                 n(c.imagesPerSecond), n(c.gflopsAchieved), n(c.fractionOfRoofline), n(c.residentMiB), n(c.peakResidentMiB),
                 c.meetsLatencyBound.map { .bool($0) } ?? .null]
            },
            note: String(format: "Roofline: OpenBLAS sgemm measured in this run at %.1f GFLOP/s (best median of four DiT layer shapes, rows split over the engine's workers). ", roofline)
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

    /// MoE against each dense baseline (same execution, batch and scenario) and cluster against in-process.
    static func comparisons(_ cells: [CostCell], suite: CostSuite) -> ResultTable {
        var rows: [[JSONValue]] = []
        let single = cells.filter { $0.scenario == Scenario.singleStream.rawValue }
        for m in single where m.kind == "MoE" && m.execution == ExecutionMode.inProcess.rawValue {
            for b in single where suite.baselines.contains(b.model) && b.batch == m.batch && b.execution == m.execution {
                rows.append([.string("\(m.name) vs \(b.name)"), .number(Double(m.batch)),
                             .number(Double(m.activatedParameters) / Double(b.activatedParameters)),
                             .number(m.gflopPerQuery / b.gflopPerQuery), .number(m.latency.p50Ms / b.latency.p50Ms),
                             .number(m.gflopsAchieved / b.gflopsAchieved)])
            }
            for cl in single where cl.model == m.model && cl.batch == m.batch && cl.execution == ExecutionMode.cluster.rawValue {
                rows.append([.string("\(m.name): \(cl.executionLabel) vs in-process"), .number(Double(m.batch)), .number(1), .number(1),
                             .number(cl.latency.p50Ms / m.latency.p50Ms), .number(cl.gflopsAchieved / m.gflopsAchieved)])
            }
        }
        return ResultTable(
            id: "cost_comparisons", title: "Side by side (single stream, p50): ratios of the first to the second",
            columns: [.init("comparison"), .init("batch", unit: "images"), .init("activated params", unit: "ratio"),
                      .init("true FLOPs", unit: "ratio"), .init("latency p50", unit: "ratio"), .init("GFLOP/s", unit: "ratio")],
            rows: rows,
            note: "Per image: " + models(cells).map { c in
                String(format: "%@ %.1fM activated parameters, %.2f true GFLOP", c.name, Double(c.activatedParameters) / 1e6,
                       c.gflopPerQuery / Double(c.imagesPerQuery))
            }.joined(separator: "; ") + ". A ratio below 1 means the first costs less.")
    }
}
