import Foundation

/// The DDPM noise schedule of DiT and DiT-MoE (upstream `diffusion/`): 1000 linear betas from 1e-4 to 0.02
/// (computed in Float64, as `np.linspace`), ᾱ_t = Π_{s≤t}(1 − β_s), and respacing to N kept steps. Data and
/// latents are in the model's own units ([−1, 1] pixels or scaled VAE latents); t is the original step index.
public struct DDPMSchedule: Sendable {
    /// ᾱ of the original 1000-step schedule.
    public let alphasCumprod: [Double]
    /// Kept original steps τ_0 < … < τ_{N−1}.
    public let timesteps: [Int]

    public init(steps: Int, trainingSteps: Int = 1000) {
        precondition(steps >= 1 && steps <= trainingSteps, "DDPMSchedule: steps must be in 1...\(trainingSteps)")
        var abar = [Double](), prod = 1.0
        for beta in DDPMSchedule.linearBetas(trainingSteps) {
            prod *= 1 - beta
            abar.append(prod)
        }
        alphasCumprod = abar
        timesteps = DDPMSchedule.spaceTimesteps(trainingSteps, steps)
    }

    /// β_t = 1e-4 + (0.02 − 1e-4)·t/(T − 1), t = 0..T−1 (`np.linspace(1e-4, 0.02, T)` scaled for T = 1000).
    public static func linearBetas(_ count: Int = 1000) -> [Double] {
        (0..<count).map { 1e-4 + (0.02 - 1e-4) * Double($0) / Double(count - 1) }
    }

    /// Upstream `space_timesteps(T, "N")` for one section: Python `round` (half to even) of an accumulated float stride.
    public static func spaceTimesteps(_ total: Int, _ count: Int) -> [Int] {
        let stride = count <= 1 ? 1.0 : Double(total - 1) / Double(count - 1)
        var cur = 0.0, taken = Set<Int>()
        for _ in 0..<count { taken.insert(Int(cur.rounded(.toNearestOrEven))); cur += stride }
        return taken.sorted()
    }

    /// ᾱ at respaced index i (ᾱ(τ_{−1}) = 1).
    public func abar(_ i: Int) -> Double { i < 0 ? 1 : alphasCumprod[timesteps[i]] }
    public func betaPrime(_ i: Int) -> Double { 1 - abar(i) / abar(i - 1) }
    /// Posterior variance σ̃²_i = β'_i(1 − ᾱ_{i−1})/(1 − ᾱ_i); the clipped log uses σ̃²_1 at i = 0.
    public func logPosteriorVarianceClipped(_ i: Int) -> Double {
        let j = (i == 0 && timesteps.count > 1) ? 1 : i
        return log(betaPrime(j) * (1 - abar(j - 1)) / (1 - abar(j)))
    }
}
