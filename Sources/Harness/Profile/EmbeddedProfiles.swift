// Generated from profiles/default.toml (a HarnessTests test checks they are identical): the default suite
// compiled into the binary so `moebench suite` works from any directory.

enum EmbeddedProfiles {
    static let defaultTOML = #"""
# moebench's embedded default suite (`moebench suite` with no argument runs this).
# The models moebench trained and ships (`moebench train`, provenance in Sources/Training/Resources/models/), on the
# UCI handwritten digits (8×8, one channel; a small real data set, not ImageNet), sized to finish in about 5 minutes
# on 2 cores:
#   cost          the learned digits-moe (8 experts, top-2, shared expert; 2.72 M activated parameters) against its
#                 dense twin digits-dense (2.83 M), in-process and with the MoE's experts on the local cluster (`hosts`);
#   load balance  routing over a 50-step DDPM sampling run of every class, with the paper's claims as verdicts, the
#                 experts' shares on the token grid and the balance-loss / shared-expert ablations side by side;
#   curves        NFE–FD of the six integrators, vanilla and DLG, on the learned MoE (experts on the cluster) and its
#                 dense twin on one figure, plus the exact-score testbed as the ground-truth panel.
# Schema and defaults: profiles/README.md. Relative paths resolve against this file's directory.
name = "default"
description = "Learned DiT-MoE vs its dense twin on the UCI digits: cost, routing verdicts, NFE–FD curves (model and exact testbed)"

[run]
seeds = [0]
warmup_iterations = 1
min_iterations = 20
min_duration_s = 0.0
max_duration_s = 10.0

[[models]]
id = "moe"
builtin = "digits-moe"
weights = "learned"

[[models]]
id = "dense"
builtin = "digits-dense"
weights = "learned"

[[models]]
id = "moe-alpha0"
builtin = "digits-moe-alpha0"
weights = "learned"

[[models]]
id = "moe-noshared"
builtin = "digits-moe-noshared"
weights = "learned"

[cost]
models = ["moe"]
baselines = ["dense"]
batch_sizes = [1, 16]
scenarios = ["single_stream", "offline", "server"]
execution = ["in_process", "cluster"]
cfg = true

[cost.offline]
queries = 4

[cost.server]
target_qps = 20.0
duration_s = 3.0

[cluster]
hosts = "../hosts"
launch = "local"

[[codec]]
dtype = "f32"
shuffle = true
lz4 = "auto"

[load_balance]
model = "moe"
execution = "in_process"
sampler = "ddpm"
steps = 50
cfg_scale = 1.5
classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
samples_per_class = 4
extra_slots_per_worker = 1
heatmap_layers = [0, 3]
ablations = ["moe-alpha0", "moe-noshared"]

[curves]
score = "model"
models = ["moe", "dense"]
execution = "cluster"
integrators = ["kar1", "kar2", "pf", "rk45", "rd", "em"]
nfe = [10, 20]
dlg = "both"
samples = 200
chains = 100
seeds = [0]

[curves.testbed]
dim = 16
components = 4
rank = 2
isotropic_std = 0.05
seed = 0
"""#
}
