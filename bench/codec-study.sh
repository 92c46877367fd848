#!/bin/bash
# Where LZ4 pays: the cluster forward per shard codec over a shaped link between two network namespaces.
#
# As root: makes namespaces <tag>-c (coordinator) and <tag>-w (worker) joined by a veth pair (10.77.<n>.1 and .2,
# not routed anywhere else), shapes both directions with tbf to each --rates entry ("none" = unshaped veth), runs
# `moebench worker` (all experts) in the worker namespace and `moebench-bench cluster-forward --hosts` in the
# coordinator namespace for every codec, and prints ms per forward per rate × codec (with the codec and transfer
# ms along the critical path; the in-process forward is printed for scale only) and whether each automatic
# LZ4 decision (<dtype>+shuffle+auto) matched the better of its two choices (<dtype> raw, <dtype>+shuffle+lz4). Namespaces and
# the worker are removed on exit, also on failure or Ctrl-C. Not run in CI.
#
# usage: sudo bench/codec-study.sh [--rates "1gbit 10gbit none"] [--batch 8] [--iterations 3]
#                                  [--codecs "f32 f32+shuffle+lz4 f32+shuffle+auto bf16 bf16+shuffle+lz4"]
set -euo pipefail

rates="1gbit 10gbit none"; batch=8; iterations=3; config="DiT-MoE-S/2-8E2A"; precision=fp32
codecs="f32 f32+shuffle+lz4 f32+shuffle+auto bf16 bf16+shuffle+lz4"
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates="$2"; shift 2;; --batch) batch="$2"; shift 2;; --iterations) iterations="$2"; shift 2;;
    --codecs) codecs="$2"; shift 2;; --config) config="$2"; shift 2;; --precision) precision="$2"; shift 2;;
    *) echo "codec-study: unknown argument '$1' (expected --rates, --batch, --iterations, --codecs, --config, --precision)" >&2; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "codec-study: needs root (ip netns, veth, tc)" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
moebench="$root/.build/release/moebench"; bench="$root/.build/release/moebench-bench"
for b in "$moebench" "$bench"; do
  [ -x "$b" ] || { echo "codec-study: $b is missing; run: swift build -c release" >&2; exit 2; }
done

tag="mbcs$$"; nsc="$tag-c"; nsw="$tag-w"; vc="${tag}c"; vw="${tag}w"
net="10.77.$(( $$ % 250 ))"; port=7301
work="$(mktemp -d)"; worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  ip netns del "$nsc" 2>/dev/null || true
  ip netns del "$nsw" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$nsc"; ip netns add "$nsw"
ip link add "$vc" type veth peer name "$vw"
ip link set "$vc" netns "$nsc"; ip link set "$vw" netns "$nsw"
ip -n "$nsc" addr add "$net.1/24" dev "$vc"; ip -n "$nsw" addr add "$net.2/24" dev "$vw"
for ns in "$nsc" "$nsw"; do ip -n "$ns" link set lo up; done
ip -n "$nsc" link set "$vc" up; ip -n "$nsw" link set "$vw" up

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"; chmod 600 "$work/secret"
printf 'w0  %s.2  %d  0  0-7\n' "$net" "$port" > "$work/hosts"
ip netns exec "$nsw" "$moebench" worker --listen "$net.2:$port" --numa-node=-1 --experts 0-7 --config "$config" \
  --seed 0 --precision "$precision" --secret-file "$work/secret" --name w0 > "$work/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 600); do
  ip netns exec "$nsc" bash -c "exec 3<>/dev/tcp/$net.2/$port" 2>/dev/null && break
  kill -0 "$worker_pid" 2>/dev/null || { echo "codec-study: the worker exited:" >&2; cat "$work/worker.log" >&2; exit 1; }
  sleep 0.2
done

echo "codec study: $config, batch $batch, $precision, one worker (all experts) in namespace $nsw, coordinator in $nsc;"
echo "link $vc <-> $vw shaped per direction with tbf; $iterations alternating pairs per codec; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-20s %10s %10s %10s %10s %8s\n' rate codec "ms/fwd" "codec ms" "transfer" "in-proc" "MB/fwd"
for rate in $rates; do
  for dev in "$nsc:$vc" "$nsw:$vw"; do
    ns="${dev%%:*}"; if="${dev##*:}"
    ip -n "$ns" link set "$if" gso_max_size 65536 2>/dev/null || true
    tc -n "$ns" qdisc del dev "$if" root 2>/dev/null || true
    if [ "$rate" != none ]; then
      # burst: one millisecond at the rate, at least one 64 KiB GSO segment. A larger bucket would let a whole
      # layer's shard (MBs) through at line speed after the compute pause that refilled it.
      case "$rate" in
        *gbit) bits=$(( ${rate%gbit} * 1000000000 ));; *mbit) bits=$(( ${rate%mbit} * 1000000 ));;
        *) echo "codec-study: rate '$rate': expected e.g. 100mbit, 1gbit or none" >&2; exit 2;;
      esac
      burst=$(( bits / 8 / 1000 )); [ "$burst" -lt 65536 ] && burst=65536
      tc -n "$ns" qdisc add dev "$if" root tbf rate "$rate" burst "$burst" latency 100ms
    fi
  done
  # shellcheck disable=SC2086
  ip netns exec "$nsc" "$bench" cluster-forward --hosts "$work/hosts" --secret-file "$work/secret" --config "$config" \
    --precision "$precision" --batch "$batch" --iterations "$iterations" --codecs $codecs --json > "$work/$rate.json"
  python3 - "$rate" "$work/$rate.json" <<'PY'
import json, sys
rate, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
by = {r["codec"]: r for r in rows}
for r in rows:
    print(f'{rate:<8} {r["codec"]:<20} {r["ms"]:10.1f} {r["codec_ms"]:10.1f} {r["transfer_ms"]:10.1f} {r["in_process_ms"]:10.1f} {r["mb_per_forward"]:8.1f}')
# Every <dtype>+shuffle+auto run is judged against the better of its two exact choices for that dtype: <dtype> raw
# and <dtype>+shuffle+lz4 (the dtype itself is never chosen automatically).
for dtype in ("f32", "f16", "bf16"):
    auto = by.get(f"{dtype}+shuffle+auto")
    choices = [by[c] for c in (dtype, f"{dtype}+shuffle+lz4") if c in by]
    if not auto or len(choices) != 2:
        continue
    raw_mb = by[dtype]["mb_per_forward"]
    picked = "LZ4" if auto["mb_per_forward"] < 0.97 * raw_mb else "raw"
    # Judged on codec + transfer ms (what the codec changes); whole-forward ms on a shared machine is mostly noise.
    cost = lambda r: r["codec_ms"] + r["transfer_ms"]
    best = min(choices, key=cost)
    best_name = "raw" if best["codec"] == dtype else "LZ4"
    verdict = "matches" if picked == best_name or abs(cost(auto) - cost(best)) <= 0.05 * cost(best) else "MISSES"
    print(f'{rate:<8} {dtype}+shuffle+auto sent {auto["mb_per_forward"]:.1f} MB/fwd (raw {raw_mb:.1f}): chose {picked}; '
          f'better exact choice {best_name} (codec+transfer {cost(best):.1f} ms); auto {cost(auto):.1f} ms: {verdict}')
PY
done
