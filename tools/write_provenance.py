#!/usr/bin/env python3
"""Writes PROVENANCE.md for a model trained by `moebench train`, from its run directory.

    python3 tools/write_provenance.py RUN_DIR "moebench train …" OUT_DIR

Reads RUN_DIR/state.json (options, config, step, wall time) and RUN_DIR/train.jsonl (held-out losses of the EMA
weights at every evaluation, the last training window's loss parts and per-layer balance), and writes
OUT_DIR/PROVENANCE.md stating the exact command, seed, steps and losses. Numbers are copied, never recomputed.
"""
import json
import os
import sys


def main():
    run, command, out = sys.argv[1], sys.argv[2], sys.argv[3]
    state = json.load(open(os.path.join(run, "state.json")))
    rows = [json.loads(l) for l in open(os.path.join(run, "train.jsonl")) if l.strip()]
    evals = [r for r in rows if r["kind"] == "eval"]
    trains = [r for r in rows if r["kind"] == "train"]
    o, c = state["options"], state["config"]
    last = trains[-1]
    rate = [r["samples_per_second"] for r in trains if r.get("samples_per_second")]
    lines = [
        f"# {c['name']}: provenance",
        "",
        "Trained by moebench itself on the UCI handwritten digits shipped with it (1,497 training images of the fixed",
        "split; 8×8, one channel, pixels scaled to [−1, 1]; Alpaydin & Kaynak 1998, CC BY 4.0). Not ImageNet.",
        "",
        "## Command",
        "```",
        command,
        f"python3 tools/convert_checkpoint.py {run}/ema.safetensors ema.safetensors --dtype f16",
        "```",
        f"`ema.safetensors` is the EMA weights stored as F16 (the run wrote F32); `config.json` uses the upstream",
        "constructor's argument names.",
        "",
        "## Run",
        f"- steps {state['step']} of {o['steps']}, batch {o['batch']}, seed {o['seed']}",
        f"- AdamW lr {o['lr']} (warm-up {o['warmupSteps']} steps, cosine to {o['minLRFraction']}·lr), weight decay {o['weightDecay']}, "
        f"clip {o['clip']}, EMA {o['emaDecay']}, label dropout {o['labelDropout']}, balance α {o['balanceAlpha']}",
        f"- wall time {state['elapsedSeconds'] / 60:.1f} min on 2 shared vCPUs (one worker thread; other jobs ran beside it), "
        f"median {sorted(rate)[len(rate) // 2]:.0f} training images/s" if rate else "",
        "",
        "## Held-out loss (EMA weights; 300 held-out digits × 4 fixed (t, ε) draws, the same for every model)",
        "| step | loss | ε-MSE | VB (bits/dim) |",
        "|---|---|---|---|",
    ]
    for e in evals:
        lines.append(f"| {e['step']} | {e['loss']:.4f} | {e['mse']:.4f} | {e['vb']:.4f} |")
    lines += [
        "",
        f"Last training window (steps {last['step'] - 9}–{last['step']}): loss {last['loss']:.4f} (ε-MSE {last['mse']:.4f}, "
        f"VB {last['vb']:.4f})" + (f", balance loss {last['balance']:.5f}" if last.get("balance") is not None else "") + ".",
    ]
    if last.get("balancedness"):
        lines.append("Per-layer balancedness (mean/max expert load) over that window: "
                     + ", ".join(f"{b:.3f}" for b in last["balancedness"]) + "; MaxVio: "
                     + ", ".join(f"{m:.3f}" for m in last["max_vio"]) + ".")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "PROVENANCE.md"), "w") as f:
        f.write("\n".join(l for l in lines if l is not None) + "\n")


if __name__ == "__main__":
    main()
