#!/usr/bin/env python3
"""Dense reference for the low-rank Gaussian-mixture testbed (DiffusionTests/TestbedTests.swift).

Explicit small parameters (d=5, K=3, r=2); the full covariances C_k + sigma^2 I are built densely and
log p_sigma(x) = logsumexp_k(log pi_k + log N(x; mu_k, C_k + sigma^2 I)) and D(x; sigma) = sum_k w_k E[x0|x,k]
(E[x0|x,k] = mu_k + C_k (C_k + sigma^2 I)^{-1} (x - mu_k)) come from numpy/scipy, with no eigen-structure shortcut.
Also the data mean and covariance. Writes Tests/DiffusionTests/Fixtures/testbed_dense.json.
"""
import json, os
import numpy as np
from scipy.stats import multivariate_normal
from scipy.special import logsumexp

rng = np.random.default_rng(7)
d, K, r = 5, 3, 2
weights = np.array([0.5, 0.3, 0.2])
means = rng.normal(0.5, 0.3, size=(K, d))
bases = [np.linalg.qr(rng.standard_normal((d, r)))[0] for _ in range(K)]
eig = rng.uniform(0.05, 0.5, size=(K, r))
delta2 = 0.003
covs = [B @ np.diag(e) @ B.T + delta2 * np.eye(d) for B, e in zip(bases, eig)]

queries = []
for sigma in [0.02, 0.3, 2.0, 20.0]:
    for _ in range(3):
        k = rng.integers(K)
        x = rng.multivariate_normal(means[k], covs[k] + sigma**2 * np.eye(d))
        logs = np.array([np.log(weights[j]) + multivariate_normal(means[j], covs[j] + sigma**2 * np.eye(d)).logpdf(x)
                         for j in range(K)])
        w = np.exp(logs - logsumexp(logs))
        post = [means[j] + covs[j] @ np.linalg.solve(covs[j] + sigma**2 * np.eye(d), x - means[j]) for j in range(K)]
        D = sum(w[j] * post[j] for j in range(K))
        queries.append({"sigma": sigma, "x": x.tolist(), "log_p": float(logsumexp(logs)), "D": D.tolist()})

mean = weights @ means
cov = sum(weights[j] * (covs[j] + np.outer(means[j], means[j])) for j in range(K)) - np.outer(mean, mean)
out = os.path.join(os.path.dirname(__file__), "..", "Tests", "DiffusionTests", "Fixtures", "testbed_dense.json")
with open(out, "w") as fh:
    json.dump({"d": d, "K": K, "r": r, "weights": weights.tolist(), "means": means.ravel().tolist(),
               "bases": [B.ravel().tolist() for B in bases], "eigenvalues": eig.ravel().tolist(),
               "isotropic_variance": delta2, "queries": queries, "mean": mean.tolist(), "cov": cov.ravel().tolist()},
              fh, indent=1)
print("wrote", len(queries), "queries")
