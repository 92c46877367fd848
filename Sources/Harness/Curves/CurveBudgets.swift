import Foundation
import Diffusion

// NFE budget → each method's own step parameter. The row always records the NFE actually counted; for KAR the
// counted NFE is even (2N − 2 vanilla), and RK45's is set by its error control, so they can differ from the budget.

public struct DLGBudgetDefaults: Sendable, Equatable, Codable {
    /// ε_main (variance, data units²). DMCMC's CIFAR10 warm-up uses 0.5; CelebA-HQ's notebook 0.8.
    public var epsilon: Double = 0.5
    /// Share of the budget spent on Langevin steps (n_skip ≈ fraction·budget); the rest goes to the integrator and
    /// the Tweedie step. DMCMC's KAR1 points (10 = 4+5+1, 20 = 10+9+1) use about 0.4–0.5; 0.3 is the default
    /// because on the testbed it beat 0.5 at 10–20 NFE for every integrator tried (KAR1, EM) and was no worse above.
    public var skipFraction: Double = 0.3
    public init(epsilon: Double = 0.5, skipFraction: Double = 0.3) { self.epsilon = epsilon; self.skipFraction = skipFraction }
}

public struct CellPlan: Sendable, Equatable {
    public var integrator: Integrator
    /// Langevin steps per sample (DLG only).
    public var nSkip: Int?
}

public enum CurveBudgets {
    /// RK45 tolerance (rtol = atol) for an integrator budget: log-linear from 1e-1 at 10 NFE to 1e-5 at 200 NFE
    /// (DMCMC uses 1e-5 for its largest-budget points), clamped to [1e-7, 1e-1].
    public static func rk45Tolerance(integratorBudget b: Int) -> Double {
        let e = -1 - 4 * log10(Double(max(b, 1)) / 10) / log10(20)
        return pow(10, min(-1, max(-7, e)))
    }

    /// Vanilla: budget = integrator NFE + 1 (Tweedie). KAR: N = ⌊(b+2)/2⌋ (NFE 2N−2); PC: N = b − 1; RK45: tolerance.
    public static func vanilla(_ kind: IntegratorKind, budget b: Int) -> CellPlan {
        switch kind {
        case .kar1: return CellPlan(integrator: .kar1(gridPoints: max(3, (b + 2) / 2)), nSkip: nil)
        case .kar2: return CellPlan(integrator: .kar2(gridPoints: max(3, (b + 2) / 2), churn: .dmcmc), nSkip: nil)
        case .pf: return CellPlan(integrator: .probabilityFlow(steps: max(2, b - 1)), nSkip: nil)
        case .rd: return CellPlan(integrator: .reverseDiffusion(steps: max(2, b - 1)), nSkip: nil)
        case .em: return CellPlan(integrator: .eulerMaruyama(steps: max(2, b - 1)), nSkip: nil)
        case .rk45:
            let tol = rk45Tolerance(integratorBudget: b - 1)
            return CellPlan(integrator: .rk45(rtol: tol, atol: tol), nSkip: nil)
        }
    }

    /// DLG: budget = n_skip + integrator NFE + 1. n_skip starts at round(fraction·b); the integrator takes what is
    /// left (KAR: N = ⌊(rest+3)/2⌋ ≥ 3; PC: N = rest ≥ 2; RK45: tolerance for `rest`), then n_skip absorbs the
    /// rounding so the planned total equals the budget where the integrator's minimum allows (n_skip ≥ 1).
    public static func dlg(_ kind: IntegratorKind, budget b: Int, defaults: DLGBudgetDefaults) -> CellPlan {
        let skip0 = max(1, Int((defaults.skipFraction * Double(b)).rounded()))
        let rest = max(1, b - 1 - skip0)
        let integrator: Integrator
        switch kind {
        case .kar1: integrator = .kar1(gridPoints: max(3, (rest + 3) / 2))
        case .kar2: integrator = .kar2(gridPoints: max(3, (rest + 3) / 2), churn: .dmcmc)
        case .pf: integrator = .probabilityFlow(steps: max(2, rest))
        case .rd: integrator = .reverseDiffusion(steps: max(2, rest))
        case .em: integrator = .eulerMaruyama(steps: max(2, rest))
        case .rk45:
            let tol = rk45Tolerance(integratorBudget: rest)
            integrator = .rk45(rtol: tol, atol: tol)
        }
        let nSkip = integrator.plannedNFE.map { max(1, b - 1 - $0) } ?? skip0
        return CellPlan(integrator: integrator, nSkip: nSkip)
    }
}
