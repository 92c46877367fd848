// The six integrators behind one value type, so DLG and the curves runner can hand off to any of them.

public enum IntegratorKind: String, CaseIterable, Sendable, Codable {
    case kar1, kar2, pf, rk45, rd, em

    public var displayName: String {
        switch self {
        case .kar1: return "KAR1 (Heun)"
        case .kar2: return "KAR2 (churn)"
        case .pf: return "Probability Flow"
        case .rk45: return "RK45"
        case .rd: return "Reverse Diffusion"
        case .em: return "Euler–Maruyama"
        }
    }
}

/// One integrator with its step parameter.
public enum Integrator: Sendable, Equatable {
    /// N grid points including the final 0 (N ≥ 3); NFE 2N − 3.
    case kar1(gridPoints: Int)
    /// As KAR1 plus churn; NFE 2N − 3.
    case kar2(gridPoints: Int, churn: ChurnSettings)
    /// N predictor steps (N ≥ 2); NFE N.
    case probabilityFlow(steps: Int)
    /// rtol and atol; NFE = nfev, adaptive.
    case rk45(rtol: Double, atol: Double)
    /// N predictor steps; NFE N.
    case reverseDiffusion(steps: Int)
    /// N steps; NFE N.
    case eulerMaruyama(steps: Int)

    public var kind: IntegratorKind {
        switch self {
        case .kar1: return .kar1
        case .kar2: return .kar2
        case .probabilityFlow: return .pf
        case .rk45: return .rk45
        case .reverseDiffusion: return .rd
        case .eulerMaruyama: return .em
        }
    }

    /// The NFE the integrator will use, when fixed in advance (nil for RK45).
    public var plannedNFE: Int? {
        switch self {
        case .kar1(let n), .kar2(let n, _): return 2 * n - 3
        case .probabilityFlow(let n), .reverseDiffusion(let n), .eulerMaruyama(let n): return n
        case .rk45: return nil
        }
    }

    /// Human-readable step parameter, e.g. "N=6" or "tol=1e-03".
    public var stepParameter: String {
        switch self {
        case .kar1(let n), .kar2(let n, _): return "N=\(n)"
        case .probabilityFlow(let n), .reverseDiffusion(let n), .eulerMaruyama(let n): return "N=\(n)"
        case .rk45(let r, let a): return r == a ? "tol=\(shortExp(r))" : "rtol=\(shortExp(r)),atol=\(shortExp(a))"
        }
    }

    /// Runs this integrator on x ([batch, d], in place) from per-sample start levels.
    public func integrate(_ x: UnsafeMutablePointer<Float>, start: [Double],
                          context: SamplerContext) throws -> IntegratorReport {
        switch self {
        case .kar1(let n): return Diffusion.kar1(x, start: start, gridPoints: n, context: context)
        case .kar2(let n, let churn): return Diffusion.kar2(x, start: start, gridPoints: n, churn: churn, context: context)
        case .probabilityFlow(let n): return Diffusion.probabilityFlow(x, start: start, steps: n, context: context)
        case .rk45(let r, let a): return try Diffusion.rk45(x, start: start, rtol: r, atol: a, context: context)
        case .reverseDiffusion(let n): return Diffusion.reverseDiffusion(x, start: start, steps: n, context: context)
        case .eulerMaruyama(let n): return Diffusion.eulerMaruyama(x, start: start, steps: n, context: context)
        }
    }
}

func shortExp(_ v: Double) -> String {
    let e = Int((dlog(v) / dlog(10)).rounded(.down))
    let m = v / dpow(10, Double(e))
    if abs(m - 1) < 1e-9 { return "1e\(e)" }
    return "\((m * 100).rounded() / 100)e\(e)"
}
