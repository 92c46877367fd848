// Affine map between the sampler's data units x and a model's native units y: y = scale·x + shift.
// σ maps as σ_y = scale·σ_x. A [-1,1] model driven in [0,1] units has scale 2, shift −1.

public struct DataUnits: Sendable, Equatable {
    public var scale: Double
    public var shift: Double
    public init(scale: Double, shift: Double) {
        precondition(scale > 0, "DataUnits.scale must be positive")
        self.scale = scale
        self.shift = shift
    }
    /// The model works in the sampler's units.
    public static let native = DataUnits(scale: 1, shift: 0)
    /// Sampler in [0,1] pixels, model in [-1,1].
    public static let zeroOneToMinusOneOne = DataUnits(scale: 2, shift: -1)
}
