#!/usr/bin/env python3
"""RK45 reference: scipy.integrate.solve_ivp(method='RK45') on the probability-flow ODE of the VE SDE for diagonal
Gaussian data, the problem DiffusionTests/RK45Tests.swift re-solves with the Swift Dormand-Prince.

  dy/dt = L_b * sigma_b(t)^2 / (v_i + sigma_b(t)^2) * (y - m_i),  sigma_b(t) = 0.01*exp(t*L_b), L_b = ln(s_b/0.01)
  y flattened over (chain b, coordinate i), t from 1 down to 1e-5 (score_sde's sampling_eps).

Writes Tests/DiffusionTests/Fixtures/rk45_steps.json: y0, the accepted step times, nfev and y(t_end) per tolerance.
"""
import json, os
import numpy as np
from scipy.integrate import solve_ivp

starts = np.array([50.0, 5.0, 0.7])
m = np.array([0.5, 0.2, 0.8, 0.4])
v = np.array([0.05, 0.01, 0.2, 0.002])
L = np.log(starts / 0.01)
rng = np.random.default_rng(1234)
y0 = (starts[:, None] * rng.standard_normal((3, 4))).ravel()

def f(t, y):
    Y = y.reshape(3, 4)
    s2 = (0.01 * np.exp(t * L)) ** 2
    return (L[:, None] * s2[:, None] / (v[None, :] + s2[:, None]) * (Y - m[None, :])).ravel()

runs = []
for tol in [1e-5, 1e-3]:
    sol = solve_ivp(f, (1.0, 1e-5), y0, method='RK45', rtol=tol, atol=tol)
    assert sol.status == 0, sol.message
    runs.append({"tol": tol, "times": sol.t[1:].tolist(), "nfev": int(sol.nfev), "y_end": sol.y[:, -1].tolist()})
    print(f"tol={tol:g}: {len(sol.t) - 1} accepted steps, nfev={sol.nfev}")

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures", "rk45_steps.json")
with open(out, "w") as fh:
    json.dump({"starts": starts.tolist(), "m": m.tolist(), "v": v.tolist(), "y0": y0.tolist(), "runs": runs}, fh, indent=1)
