// Generated from profiles/default.toml (a HarnessTests test checks they are identical): the default suite
// compiled into the binary so `moebench suite` works from any directory.

enum EmbeddedProfiles {
    static let defaultTOML = #"""
# moebench's embedded default suite (`moebench suite` with no argument runs this).
# A short tour of every part, sized to finish within about 5 minutes on 2 cores with random weights:
#   cost          DiT-MoE-S/2-8E2A (71.9M activated parameters, 32.1 true GFLOPs per image) against dense DiT-S/2
#                 (33.0M, 12.1) and DiT-B/2 (130.5M, 46.0): the MoE sits between them in activated parameters and
#                 below DiT-B/2 in FLOPs; batch 1 and 2, in-process and on the local cluster described by `hosts`;
#   load balance  expert counts over a 10-step sampling run of two classes, with heatmaps and a placement what-if;
#   curves        an NFE–FD sweep of the six integrators, vanilla and DLG, on the exact-score testbed.
# Schema and defaults: profiles/README.md.
name = "default"
description = "Dense vs MoE cost (in-process and cluster), load balance over a short sampling run, testbed NFE–FD sweep"

[run]
seeds = [0]
warmup_iterations = 1
min_iterations = 3
min_duration_s = 0.0
max_duration_s = 20.0

[[models]]
id = "moe-s"
builtin = "DiT-MoE-S/2-8E2A"

[[models]]
id = "dit-s"
builtin = "DiT-S/2"

[[models]]
id = "dit-b"
builtin = "DiT-B/2"

[cost]
models = ["moe-s"]
baselines = ["dit-s", "dit-b"]
batch_sizes = [1, 2]
scenarios = ["single_stream", "offline", "server"]
execution = ["in_process", "cluster"]
cfg = true

[cost.offline]
queries = 2

[cost.server]
target_qps = 1.0
duration_s = 5.0

[cluster]
hosts = "hosts"
launch = "local"

[[codec]]
dtype = "f32"
shuffle = true
lz4 = "auto"

[load_balance]
model = "moe-s"
execution = "in_process"
sampler = "ddim"
steps = 10
cfg_scale = 1.5
classes = [207, 360]
samples_per_class = 1
extra_slots_per_worker = 1
heatmap_layers = [0, 5, 11]

[curves]
score = "testbed"
integrators = ["kar1", "kar2", "pf", "rk45", "rd", "em"]
nfe = [10, 20, 50, 100]
dlg = "both"
samples = 500
seeds = [0, 1]

[curves.testbed]
dim = 16
components = 4
rank = 2
isotropic_std = 0.05
seed = 0
"""#
}
