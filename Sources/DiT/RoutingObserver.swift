/// Receives every MoE layer's routing decision. The model calls it once per layer per forward, only when an
/// observer is attached (a nil check otherwise).
///
/// `experts` and `weights` are `[batch·tokens, topK]` in (sample, token) order; each token's K slots are sorted by
/// gate weight, descending (ties: lower expert id first). Weights are softmax probabilities, not renormalised.
/// The pointers are valid only during the call.
public protocol RoutingObserver: AnyObject {
    func observe(layer: Int, batch: Int, tokens: Int, topK: Int, experts: UnsafePointer<Int32>, weights: UnsafePointer<Float>)
}

/// Keeps a copy of the last forward's routing, per layer (what `moebench forward` writes out).
public final class RoutingRecorder: RoutingObserver {
    public private(set) var experts: [Int: [Int32]] = [:]
    public private(set) var weights: [Int: [Float]] = [:]
    public private(set) var shape: (rows: Int, topK: Int) = (0, 0)

    public init() {}

    public func observe(layer: Int, batch: Int, tokens: Int, topK: Int, experts e: UnsafePointer<Int32>,
                        weights w: UnsafePointer<Float>) {
        let n = batch * tokens * topK
        experts[layer] = Array(UnsafeBufferPointer(start: e, count: n))
        weights[layer] = Array(UnsafeBufferPointer(start: w, count: n))
        shape = (batch * tokens, topK)
    }
}
