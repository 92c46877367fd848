import Tensor
// Dormand–Prince 5(4) with scipy.integrate.RK45's error control and initial step (scipy 1.x `rk.py`, `common.py`).
// Float64 state. Propagates the 5th-order solution; FSAL; error weights E = b − b̂ (7 entries).
// Function evaluations: 1 (f0) + 1 (initial-step probe) + 6 per attempted step.

public struct RK45Statistics: Sendable, Equatable {
    /// Function evaluations (scipy `nfev`).
    public var nfev: Int
    public var acceptedSteps: Int
    public var rejectedSteps: Int
    /// t after each accepted step (scipy `sol.t` without t0).
    public var times: [Double]
    public init(nfev: Int, acceptedSteps: Int, rejectedSteps: Int, times: [Double]) {
        self.nfev = nfev; self.acceptedSteps = acceptedSteps; self.rejectedSteps = rejectedSteps; self.times = times
    }
}

public enum RK45Error: Error, CustomStringConvertible {
    case stepTooSmall(t: Double)
    public var description: String {
        switch self {
        case .stepTooSmall(let t): return "RK45: required step size is less than spacing between numbers at t = \(t)"
        }
    }
}

enum DP45 {
    static let c: [Double] = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1]
    static let a: [[Double]] = [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
    ]
    static let b: [Double] = [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84]
    static let e: [Double] = [-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40]
    static let safety = 0.9, minFactor = 0.2, maxFactor = 10.0
    static let errorExponent = -1.0 / 5
}

/// RMS norm, scipy's `norm(x) = ‖x‖₂/√n`.
@inline(__always)
private func rms(_ n: Int, _ value: (Int) -> Double) -> Double {
    var s = 0.0
    for i in 0..<n { let v = value(i); s += v * v }
    return (s / Double(n)).squareRoot()
}

/// Solves y' = f(t, y) from t0 to t1 (either direction) in place on y (n elements). `f(t, y, out)` writes f.
public func solveRK45(dimension n: Int, from t0: Double, to t1: Double, y: UnsafeMutablePointer<Double>,
                      rtol: Double, atol: Double,
                      f: (Double, UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void) throws -> RK45Statistics {
    var stats = RK45Statistics(nfev: 0, acceptedSteps: 0, rejectedSteps: 0, times: [])
    if t0 == t1 { return stats }
    let direction: Double = t1 > t0 ? 1 : -1
    let k = (0..<7).map { _ in DoubleBuffer(n) }
    let yNew = DoubleBuffer(n), yStage = DoubleBuffer(n), probe = DoubleBuffer(n)
    func eval(_ t: Double, _ yy: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>) {
        stats.nfev += 1
        f(t, yy, out)
    }
    var t = t0
    // f0 lives in k[0]; FSAL keeps it there.
    eval(t, y, k[0].p)

    // Initial step (Hairer II.4, scipy `select_initial_step`, error estimator order 4).
    let interval = abs(t1 - t0)
    let d0 = rms(n) { y[$0] / (atol + abs(y[$0]) * rtol) }
    let d1 = rms(n) { k[0].p[$0] / (atol + abs(y[$0]) * rtol) }
    var h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1
    h0 = min(h0, interval)
    for i in 0..<n { yStage.p[i] = y[i] + h0 * direction * k[0].p[i] }
    eval(t + h0 * direction, yStage.p, probe.p)
    let d2 = rms(n) { (probe.p[$0] - k[0].p[$0]) / (atol + abs(y[$0]) * rtol) } / h0
    let h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? max(1e-6, h0 * 1e-3) : dpow(0.01 / max(d1, d2), 1.0 / 5)
    var hAbs = min(100 * h0, h1, interval)

    while direction * (t - t1) < 0 {
        let minStep = 10 * abs(t.nextUp(direction) - t)
        if hAbs < minStep { hAbs = minStep }
        var accepted = false, rejected = false
        var tNew = t
        while !accepted {
            if hAbs < minStep { throw RK45Error.stepTooSmall(t: t) }
            var h = hAbs * direction
            tNew = t + h
            if direction * (tNew - t1) > 0 { tNew = t1 }
            h = tNew - t
            hAbs = abs(h)
            // Stages 1..5.
            for s in 1..<6 {
                let row = DP45.a[s]
                for i in 0..<n {
                    var acc = 0.0
                    for j in 0..<s { acc += k[j].p[i] * row[j] }
                    yStage.p[i] = y[i] + acc * h
                }
                eval(t + DP45.c[s] * h, yStage.p, k[s].p)
            }
            for i in 0..<n {
                var acc = 0.0
                for j in 0..<6 { acc += k[j].p[i] * DP45.b[j] }
                yNew.p[i] = y[i] + h * acc
            }
            eval(t + h, yNew.p, k[6].p)
            let errorNorm = rms(n) { i in
                var e = 0.0
                for j in 0..<7 { e += k[j].p[i] * DP45.e[j] }
                return e * h / (atol + max(abs(y[i]), abs(yNew.p[i])) * rtol)
            }
            if errorNorm < 1 {
                var factor = errorNorm == 0 ? DP45.maxFactor
                    : min(DP45.maxFactor, DP45.safety * dpow(errorNorm, DP45.errorExponent))
                if rejected { factor = min(1, factor) }
                hAbs *= factor
                accepted = true
            } else {
                hAbs *= max(DP45.minFactor, DP45.safety * dpow(errorNorm, DP45.errorExponent))
                rejected = true
                stats.rejectedSteps += 1
            }
        }
        t = tNew
        y.update(from: yNew.p, count: n)
        k[0].p.update(from: k[6].p, count: n)                        // FSAL
        stats.acceptedSteps += 1
        stats.times.append(t)
    }
    return stats
}

extension Double {
    /// nextafter(self, direction·∞).
    fileprivate func nextUp(_ direction: Double) -> Double { direction > 0 ? nextUp : nextDown }
}
