import DiT
import Diffusion
import Foundation

/// A DiT or DiT-MoE model (in-process, or with its experts on the cluster through its executor) as the ε-model
/// and velocity model of the denoiser seam, with classifier-free guidance.
///
/// Per sample b the model is conditioned on `labels[b]` (`numClasses` = the null class). With a guidance scale s
/// each call runs the batch [x, x] with labels [y, null] and the prediction is u + s·(c − u): for ε on channels
/// 0..<min(3, C) only, as upstream's `forward_with_cfg` (a 4-channel latent's last ε channel stays conditional),
/// for the rectified-flow velocity on all C channels; learned-σ models keep the conditional half's variance
/// channels. Layout: x and outputs `[batch, C·H·W]` (one image per row, NCHW inside the row).
///
/// The seam has no error channel: when the model fails (e.g. a cluster worker lost with no replica) the call
/// writes NaN and keeps the error in `failure`; samplers then finish on NaN and the caller reports `failure`.
public final class DiTEpsilonModel: LearnedVarianceEpsilonModel, VelocityModel {
    public let model: DiTModel
    /// Class of each sample of the next calls; must hold at least the batch size.
    public var labels: [Int32]
    public var cfgScale: Float?
    /// Called before every model call with the number of calls made so far (routing per denoising step).
    public var onCall: ((Int) -> Void)?
    public private(set) var calls = 0
    /// The first model error, if any (see above).
    public private(set) var failure: Error?

    private var xIn: [Float] = [], tIn: [Float] = [], yIn: [Int32] = [], out: [Float] = []

    public init(model: DiTModel, labels: [Int32], cfgScale: Float? = nil) {
        self.model = model; self.labels = labels; self.cfgScale = cfgScale
    }

    public var dimension: Int { model.config.inChannels * model.config.inputSize * model.config.inputSize }

    public func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int,
                             into eps: UnsafeMutablePointer<Float>) {
        run(xt, times: timesteps, batch: batch, into: eps, varianceFraction: nil, guided: min(3, model.config.inChannels))
    }

    public func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int,
                             into eps: UnsafeMutablePointer<Float>, varianceFraction: UnsafeMutablePointer<Float>) {
        run(xt, times: timesteps, batch: batch, into: eps, varianceFraction: model.config.learnSigma ? varianceFraction : nil,
            guided: min(3, model.config.inChannels))
        if !model.config.learnSigma { varianceFraction.update(repeating: 0, count: batch * dimension) }
    }

    public func predictVelocity(_ z: UnsafePointer<Float>, time: UnsafePointer<Double>, batch: Int,
                                into v: UnsafeMutablePointer<Float>) {
        run(z, times: time, batch: batch, into: v, varianceFraction: nil, guided: model.config.inChannels)
    }

    /// One model call (CFG: one forward of 2·batch), guidance on the first `guided` channels.
    private func run(_ x: UnsafePointer<Float>, times: UnsafePointer<Double>, batch: Int, into pred: UnsafeMutablePointer<Float>,
                     varianceFraction: UnsafeMutablePointer<Float>?, guided: Int) {
        precondition(labels.count >= batch, "DiTEpsilonModel: \(labels.count) labels for a batch of \(batch)")
        onCall?(calls)
        calls += 1
        let c = model.config, d = dimension, plane = c.inputSize * c.inputSize
        let rows = cfgScale == nil ? batch : 2 * batch
        let outImage = c.outChannels * plane
        if xIn.count < rows * d { xIn = .init(repeating: 0, count: rows * d); out = .init(repeating: 0, count: rows * outImage) }
        if tIn.count < rows { tIn = .init(repeating: 0, count: rows); yIn = .init(repeating: 0, count: rows) }
        for b in 0..<batch {
            for i in 0..<d { xIn[b * d + i] = x[b * d + i] }
            tIn[b] = Float(times[b]); yIn[b] = labels[b]
            if cfgScale != nil {
                for i in 0..<d { xIn[(batch + b) * d + i] = x[b * d + i] }
                tIn[batch + b] = Float(times[b]); yIn[batch + b] = Int32(c.nullClass)
            }
        }
        do {
            try model.forward(x: xIn, t: tIn, y: yIn, batch: rows, out: &out)
        } catch {
            if failure == nil { failure = error }
            pred.update(repeating: .nan, count: batch * d)
            varianceFraction?.update(repeating: .nan, count: batch * d)
            return
        }
        let s = cfgScale ?? 1, guidedCount = guided * plane
        for b in 0..<batch {
            let cond = b * outImage, uncond = (batch + b) * outImage
            for i in 0..<d {
                pred[b * d + i] = cfgScale == nil || i >= guidedCount ? out[cond + i] : out[uncond + i] + s * (out[cond + i] - out[uncond + i])
            }
            if let f = varianceFraction {
                for i in 0..<d { f[b * d + i] = (out[cond + d + i] + 1) / 2 }
            }
        }
    }
}
