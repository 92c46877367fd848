#!/usr/bin/env python3
"""Writes Tests/HarnessTests/Fixtures/compare-{a,b}/results.json: two small synthetic runs (schema 2) for the
`moebench compare` tests, with machine and profile copied from Fixtures/sample-results.

Run A and B share "moe in_process b1 single_stream" (B = 1.30 x A: a regression), "dense in_process b1
single_stream" (B = 1.01 x A: within 5%) and the paired ratio "M vs D" b1; "moe b16 offline" is only in A,
"dense b16 single_stream" only in B; B's cost part ran on a busy machine. Latencies are illustrative, not measured.
"""
import json, os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
fx = os.path.join(here, "..", "Tests", "HarnessTests", "Fixtures")
base = json.load(open(os.path.join(fx, "sample-results", "results.json")))

def latency(ms):
    ms = [float(x) for x in ms]
    a = np.array(ms)
    q1, med, q3 = np.quantile(a, [0.25, 0.5, 0.75])
    return {"count": len(ms), "medianMs": float(med), "q1Ms": float(q1), "q3Ms": float(q3), "iqrMs": float(q3 - q1),
            "madMs": float(np.median(np.abs(a - med))), "omitted": ["p90: needs ≥ 100 queries, have %d" % len(ms),
            "p99: needs ≥ 1000 queries, have %d" % len(ms), "p99.9: needs ≥ 10000 queries, have %d" % len(ms)],
            "minMs": float(a.min()), "maxMs": float(a.max()), "meanMs": float(a.mean()), "wallSeconds": float(a.sum() / 1000),
            "queriesPerSecond": float(len(ms) / (a.sum() / 1000)), "itemsPerSecond": float(len(ms) / (a.sum() / 1000)),
            "samplesMs": ms}

def cell(model, kind, batch, scenario, ms):
    return {"model": model, "name": model.upper(), "kind": kind, "execution": "in_process", "batch": batch, "scenario": scenario,
            "precision": "fp32", "imagesPerQuery": batch, "gflopPerQuery": 1.0, "totalParameters": 1000, "activatedParameters": 500,
            "latency": latency(ms), "imagesPerSecond": 1.0, "gflopsAchieved": 1.0, "fractionOfRoofline": 0.01,
            "residentMiB": 10.0, "peakResidentMiB": 10.0, "phaseMsPerQuery": {}}

def pair(first, second):
    return {"label": "M vs D", "first": "M", "second": "D", "batch": 1, "method": "paired", "count": len(first),
            "ratio": float(np.median(np.array(first) / np.array(second))), "activatedParameterRatio": 0.5, "flopRatio": 0.5,
            "firstMs": first, "secondMs": second}

k = np.arange(20)
moe = [round(10 + 0.1 * ((7 * i) % 20), 6) for i in k]      # 10.0 … 11.9 ms, shuffled
dense = [round(5 + 0.05 * ((3 * i) % 20), 6) for i in k]    # 5.0 … 5.95 ms
def doc(name, cells, pairs, busy):
    d = json.loads(json.dumps(base))
    d["schema"] = "moebench-results/2"
    d["startedAt"] = d["updatedAt"] = d["finishedAt"] = "2026-01-0%dT12:00:00Z" % (1 if name == "a" else 2)
    load = {"cores": 2, "busy": busy, "warnings": ["Machine busy: other processes kept 1.60 of 2 cores busy on average during this part (threshold 1.0); timings are slower and noisier than on an idle machine."] if busy else [],
            "before": {"load1": 0.1, "load5": 0.1, "load15": 0.1, "totalTicks": 1000, "idleTicks": 900, "stealTicks": 0, "processTicks": 10, "monotonicSeconds": 100.0},
            "after": {"load1": 1.9, "load5": 0.5, "load15": 0.2, "totalTicks": 3000, "idleTicks": 1000, "stealTicks": 0, "processTicks": 400, "monotonicSeconds": 110.0}}
    d["parts"] = [{"id": "cost", "title": "Inference cost: dense versus MoE", "status": "done", "summary": load["warnings"], "tables": [],
                   "figures": [], "data": {"cells": cells, "pairs": pairs}, "machineLoad": load}]
    os.makedirs(os.path.join(fx, "compare-" + name), exist_ok=True)
    with open(os.path.join(fx, "compare-" + name, "results.json"), "w") as f:
        json.dump(d, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")

doc("a", [cell("moe", "MoE", 1, "single_stream", moe), cell("dense", "dense", 1, "single_stream", dense),
          cell("moe", "MoE", 16, "offline", moe)],
    [pair(moe, dense)], busy=False)
doc("b", [cell("moe", "MoE", 1, "single_stream", [round(1.3 * x, 6) for x in moe]),
          cell("dense", "dense", 1, "single_stream", [round(1.01 * x, 6) for x in dense]),
          cell("dense", "dense", 16, "single_stream", dense)],
    [pair([round(1.01 * x, 6) for x in moe], dense)], busy=True)
