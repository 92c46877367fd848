// The expert-execution seam.
//
// The MoE layer routes every token to K experts, groups the (token, slot) rows by expert id in ascending order,
// and hands the groups to an ExpertExecutor. The in-process executor runs them on local weights; the cluster
// executor ships each expert's shard to a worker that owns it. Model code is identical in both modes.

/// One MoE layer's routed work, grouped by expert.
///
/// Layout invariants (all row-major Float32):
/// - rows `offsets[e] ..< offsets[e+1]` belong to expert `e`, for `e` in `0..<expertCount`; `offsets` has
///   `expertCount + 1` entries, `offsets[0] == 0`, and `offsets[expertCount]` is the total row count (= N·K for
///   N tokens); within an expert, rows are in ascending (token, slot) order.
/// - `input` is `[rows, dim]`: the modulated hidden state of each row's token (gathered, so a token appears once
///   per expert that chose it).
/// - `gateWeights` is `[rows]`: the softmax probability of that expert for that token (not renormalised).
/// - `output` is `[rows, dim]` and receives `gateWeights[r] · expert_e(input[r])` for every row `r`.
public struct ExpertShards {
    public var layer: Int
    public var dim: Int
    public var expertCount: Int
    public var offsets: UnsafePointer<Int>
    public var input: UnsafePointer<Float>
    public var gateWeights: UnsafePointer<Float>
    public var output: UnsafeMutablePointer<Float>

    public init(layer: Int, dim: Int, expertCount: Int, offsets: UnsafePointer<Int>, input: UnsafePointer<Float>,
                gateWeights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        self.layer = layer; self.dim = dim; self.expertCount = expertCount; self.offsets = offsets
        self.input = input; self.gateWeights = gateWeights; self.output = output
    }

    /// Number of rows routed to expert `e`.
    @inlinable public func rowCount(expert e: Int) -> Int { offsets[e + 1] - offsets[e] }
}

/// Runs the routed experts of one MoE layer. Called once per MoE layer per forward, from one thread.
public protocol ExpertExecutor: AnyObject {
    func execute(_ shards: ExpertShards) throws
}

/// An executor that can break its own time down (the cluster executor: codec, transfer, waiting). The model's
/// profile attributes the executor's whole call to `routedExperts`; `movePhases` moves the executor's share out of
/// it into the executor's own phases, and resets the executor's counters.
public protocol PhaseReportingExecutor: ExpertExecutor {
    func movePhases(into profile: inout PhaseProfile)
}
