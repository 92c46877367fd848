#!/usr/bin/env bash
# Builds the libFuzzer target over the wire decoders (bench/fuzz/WireFuzz.swift + Sources/Wire, with ASan) and runs it.
# Not part of CI or `swift test`: a run of 10^7 executions takes tens of minutes on one core.
#
#   bench/fuzz.sh [RUNS] [extra libFuzzer flags…]     default RUNS=10000000
#
# Output: .build/fuzz/ (binary, corpus, crash-* artifacts, fuzz.log). Prints executions and wall time at the end.
# Needs the debug build's swift-crypto objects (`swift build` first; the script runs it for the Crypto target).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10000000}"; shift || true
OUT=.build/fuzz
mkdir -p "$OUT/corpus" "$OUT/obj"

nice swift build --target Crypto >/dev/null
DBG=.build/debug
# CSupport (CRC32C): compiled here so its module map and objects match this checkout.
cat > "$OUT/obj/module.modulemap" <<MAP
module CSupport {
    umbrella "$PWD/Sources/CSupport/include"
    export *
}
MAP
for c in Sources/CSupport/*.c; do
    nice clang -O2 -g -fsanitize=fuzzer-no-link,address -ISources/CSupport/include -c "$c" -o "$OUT/obj/$(basename "$c").o"
done
CRYPTO_OBJS=$(find "$DBG/Crypto.build" "$DBG/CryptoBoringWrapper.build" "$DBG/CCryptoBoringSSL.build" "$DBG/CCryptoBoringSSLShims.build" "$DBG/CXKCP.build" "$DBG/CXKCPShims.build" -name '*.o')
nice swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name Wire \
    -I "$DBG/Modules" -I Sources/CLZ4 -I "$OUT/obj" \
    -Xcc -fmodule-map-file="$OUT/obj/module.modulemap" \
    $(find .build/checkouts/swift-crypto/Sources -name module.modulemap -printf '-Xcc -fmodule-map-file=%p ') \
    Sources/Wire/*.swift bench/fuzz/WireFuzz.swift \
    "$OUT"/obj/*.o $CRYPTO_OBJS -llz4 -lnuma -lstdc++ \
    -o "$OUT/wire-fuzz" 2>&1 | grep -v "Cannot export local symbol" || true
test -x "$OUT/wire-fuzz"

FUZZ_SEEDS="$OUT/corpus" "$OUT/wire-fuzz" -runs=0 "$OUT/corpus" >/dev/null 2>&1 || true
start=$(date +%s)
set +e
nice -n 10 "$OUT/wire-fuzz" -runs="$RUNS" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$@" "$OUT/corpus" > "$OUT/fuzz.log" 2>&1
rc=$?
set -e
end=$(date +%s)
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY|Fatal error|deadly signal" "$OUT/fuzz.log" | head -20
echo "exit code $rc; wall time $((end - start)) s; corpus $(ls "$OUT/corpus" | wc -l) inputs; log $OUT/fuzz.log"
exit $rc
