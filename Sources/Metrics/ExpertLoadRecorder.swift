// Expert-selection counting for MoE routing analysis (the class, position and step heatmaps of DiT-MoE Figs. 5–7).
//
// What is counted: one +1 per (token, top-k slot), exactly like DiT-MoE's `analysis/heatmap_*.py` ("both top-k
// slots count +1"). Which tokens are recorded (e.g. only the conditional half of a CFG batch) is the caller's choice.
//
// Storage (all counters allocated once in `init`, never resized):
//   byClass    [layer][class][expert]     UInt64   (heatmap_class.py)
//   byPosition [layer][position][expert]  UInt64   (heatmap_patch.py)
//   byStep     [layer][step][expert]      UInt64   (heatmap_step.py)
//   joint      [layer][step][position][class][expert] UInt32, only when its element count is ≤ `jointLimit`.
// The full joint is optional because at paper scale (12 layers × 250 steps × 256 positions × 1001 classes × 8
// experts = 6.2e9 counters) it cannot be held in memory, while the three marginals are what every heatmap and
// every balance metric needs. A short profiling run (a few classes, tens of steps) keeps the joint.
//
// `record` is allocation-free and lock-free; a recorder is not thread-safe: use one per thread and `merge`.

/// Extents of the routing counter. `step` is the sampler's step index (0 = the first model call, pure noise),
/// `position` the token index in row-major patch-grid order, `classLabel` the class index as fed to the label
/// embedder (1000 = the null class of CFG, counted only if `classes` > 1000).
public struct RoutingDimensions: Codable, Equatable, Sendable {
    public var layers: Int
    public var steps: Int
    public var positions: Int
    public var classes: Int
    public var experts: Int

    public init(layers: Int, steps: Int, positions: Int, classes: Int, experts: Int) {
        precondition(layers > 0 && steps > 0 && positions > 0 && classes > 0 && experts > 0,
                     "RoutingDimensions: every extent must be positive")
        self.layers = layers
        self.steps = steps
        self.positions = positions
        self.classes = classes
        self.experts = experts
    }

    /// Number of counters of the full joint layer × step × position × class × expert.
    public var jointCount: Int { layers * steps * positions * classes * experts }
}

public final class ExpertLoadRecorder {
    public let dims: RoutingDimensions
    /// Whether the full 5-D joint counter is kept (see the file comment).
    public let storesJoint: Bool

    private let byClass: UnsafeMutablePointer<UInt64>
    private let byPosition: UnsafeMutablePointer<UInt64>
    private let byStep: UnsafeMutablePointer<UInt64>
    private let joint: UnsafeMutablePointer<UInt32>?
    private let classCount: Int, positionCount: Int, stepCount: Int

    /// Tokens recorded (each contributes one count per valid top-k slot).
    public private(set) var recordedTokens: UInt64 = 0
    /// Tokens ignored because layer, step, class or position was out of range.
    public private(set) var rejectedTokens: UInt64 = 0
    /// Top-k slots ignored because the expert id was out of 0..<experts.
    public private(set) var rejectedSlots: UInt64 = 0

    /// Default cap on the joint counter: 2^24 counters (64 MiB of UInt32).
    public static let defaultJointLimit = 1 << 24

    public init(dims: RoutingDimensions, jointLimit: Int = ExpertLoadRecorder.defaultJointLimit) {
        self.dims = dims
        classCount = dims.layers * dims.classes * dims.experts
        positionCount = dims.layers * dims.positions * dims.experts
        stepCount = dims.layers * dims.steps * dims.experts
        byClass = .allocate(capacity: classCount)
        byPosition = .allocate(capacity: positionCount)
        byStep = .allocate(capacity: stepCount)
        byClass.initialize(repeating: 0, count: classCount)
        byPosition.initialize(repeating: 0, count: positionCount)
        byStep.initialize(repeating: 0, count: stepCount)
        storesJoint = dims.jointCount <= jointLimit
        if storesJoint {
            let j = UnsafeMutablePointer<UInt32>.allocate(capacity: dims.jointCount)
            j.initialize(repeating: 0, count: dims.jointCount)
            joint = j
        } else {
            joint = nil
        }
    }

    deinit {
        byClass.deallocate()
        byPosition.deallocate()
        byStep.deallocate()
        joint?.deallocate()
    }

    /// Records the top-k expert ids chosen for one token. Allocation-free. Out-of-range indices are counted in
    /// `rejectedTokens` / `rejectedSlots` instead of trapping.
    @inline(__always)
    public func record(layer: Int, step: Int, classLabel: Int, tokenPosition: Int,
                       experts: UnsafeBufferPointer<Int32>) {
        let d = dims
        guard layer >= 0, layer < d.layers, step >= 0, step < d.steps, classLabel >= 0, classLabel < d.classes,
              tokenPosition >= 0, tokenPosition < d.positions else {
            rejectedTokens &+= 1
            return
        }
        recordedTokens &+= 1
        let e = d.experts
        let cBase = (layer * d.classes + classLabel) * e
        let pBase = (layer * d.positions + tokenPosition) * e
        let sBase = (layer * d.steps + step) * e
        let jBase = (((layer * d.steps + step) * d.positions + tokenPosition) * d.classes + classLabel) * e
        for slot in 0..<experts.count {
            let x = Int(experts[slot])
            guard x >= 0, x < e else {
                rejectedSlots &+= 1
                continue
            }
            byClass[cBase + x] &+= 1
            byPosition[pBase + x] &+= 1
            byStep[sBase + x] &+= 1
            if let joint { joint[jBase + x] &+= 1 }
        }
    }

    /// Records one image's tokens: `topK` holds `positions × k` ids, row t being token position t (the layout of a
    /// gate's top-k output for one sample). Allocation-free.
    public func recordImage(layer: Int, step: Int, classLabel: Int, topK: UnsafeBufferPointer<Int32>, k: Int) {
        precondition(k > 0 && topK.count % k == 0, "recordImage: topK.count must be a multiple of k")
        let tokens = topK.count / k
        guard let base = topK.baseAddress else { return }
        for t in 0..<tokens {
            record(layer: layer, step: step, classLabel: classLabel, tokenPosition: t,
                   experts: UnsafeBufferPointer(start: base + t * k, count: k))
        }
    }

    /// Adds another recorder's counts (same dimensions) into this one.
    public func merge(_ other: ExpertLoadRecorder) {
        precondition(other.dims == dims, "merge: dimensions differ")
        for i in 0..<classCount { byClass[i] &+= other.byClass[i] }
        for i in 0..<positionCount { byPosition[i] &+= other.byPosition[i] }
        for i in 0..<stepCount { byStep[i] &+= other.byStep[i] }
        if let joint, let o = other.joint {
            for i in 0..<dims.jointCount { joint[i] &+= o[i] }
        }
        recordedTokens &+= other.recordedTokens
        rejectedTokens &+= other.rejectedTokens
        rejectedSlots &+= other.rejectedSlots
    }

    public func reset() {
        byClass.update(repeating: 0, count: classCount)
        byPosition.update(repeating: 0, count: positionCount)
        byStep.update(repeating: 0, count: stepCount)
        joint?.update(repeating: 0, count: dims.jointCount)
        recordedTokens = 0
        rejectedTokens = 0
        rejectedSlots = 0
    }

    // MARK: Reads (allocate; not for the hot path)

    /// One cell of the joint counter, or nil when the joint is not stored or an index is out of range.
    public func jointCount(layer: Int, step: Int, position: Int, classLabel: Int, expert: Int) -> UInt32? {
        let d = dims
        guard let joint, (0..<d.layers).contains(layer), (0..<d.steps).contains(step),
              (0..<d.positions).contains(position), (0..<d.classes).contains(classLabel),
              (0..<d.experts).contains(expert) else { return nil }
        return joint[(((layer * d.steps + step) * d.positions + position) * d.classes + classLabel) * d.experts + expert]
    }

    /// Per-expert selection counts of one layer (summed over steps, positions and classes).
    public func expertLoads(layer: Int) -> [Double] {
        precondition((0..<dims.layers).contains(layer), "expertLoads: layer out of range")
        var out = [Double](repeating: 0, count: dims.experts)
        let e = dims.experts
        for s in 0..<dims.steps {
            let base = (layer * dims.steps + s) * e
            for x in 0..<e { out[x] += Double(byStep[base + x]) }
        }
        return out
    }

    /// Per-layer per-expert selection counts, `[layer][expert]`.
    public func expertLoadMatrix() -> [[Double]] {
        (0..<dims.layers).map { expertLoads(layer: $0) }
    }

    /// Class × expert counts of one layer (raw). `classes` selects and orders the rows; by default every class with
    /// at least one recorded token (DiT-MoE's figure uses the classes ≡ 0 mod 10).
    public func classExpertTable(layer: Int, classes: [Int]? = nil) -> CountTable {
        let e = dims.experts
        let rows: [Int] = classes ?? (0..<dims.classes).filter { c in
            (0..<e).contains { x in byClass[(layer * dims.classes + c) * e + x] > 0 }
        }
        var values = [Double](repeating: 0, count: rows.count * e)
        for (r, c) in rows.enumerated() where (0..<dims.classes).contains(c) {
            for x in 0..<e { values[r * e + x] = Double(byClass[(layer * dims.classes + c) * e + x]) }
        }
        return CountTable(layer: layer, rowName: "class", rowLabels: rows, columns: e, values: values)
    }

    /// Position × expert counts of one layer (raw); rows are token positions 0..<positions.
    public func positionExpertTable(layer: Int) -> CountTable {
        let e = dims.experts
        let base = layer * dims.positions * e
        let values = (0..<(dims.positions * e)).map { Double(byPosition[base + $0]) }
        return CountTable(layer: layer, rowName: "position", rowLabels: Array(0..<dims.positions), columns: e,
                          values: values)
    }

    /// Step × expert counts of one layer (raw); rows are step indices 0..<steps (0 = first model call).
    public func stepExpertTable(layer: Int) -> CountTable {
        let e = dims.experts
        let base = layer * dims.steps * e
        let values = (0..<(dims.steps * e)).map { Double(byStep[base + $0]) }
        return CountTable(layer: layer, rowName: "step", rowLabels: Array(0..<dims.steps), columns: e,
                          values: values)
    }
}
