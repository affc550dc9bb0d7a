#!/usr/bin/env bash
# Loopback latency and throughput of examples/gateway.rs against calling
# its upstream directly, at concurrency 1, 8 and 32, with wrk (Debian's
# package). Both targets run in the one gateway process (`--bench`: only
# the weighted pair of healthy upstreams behind the gateway), so the
# difference is the gateway's own cost: axum, the layer, hyper-util's
# client and the extra loopback hop.
#
# Usage: benches/gateway_loopback.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-10}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --quiet --release --example gateway
out="$(mktemp)"
lua="$(mktemp --suffix .lua)"
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out" "$lua"' EXIT
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}'
LUA
"${CARGO_TARGET_DIR:-target}/release/examples/gateway" --bench >"$out" &
pid=$!
for _ in $(seq 100); do
    grep -q '^bench ' "$out" && break
    sleep 0.1
done
read -r _ direct gateway < <(grep '^bench ' "$out")

printf '%s\n' "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(rustc --version)"
printf '| target | connections | requests/s | p50 | p99 |\n|---|---|---|---|---|\n'
for c in 1 8 32; do
    for name in direct gateway; do
        url="http://${!name}/v1/chat/completions"
        result="$(wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d "${secs}s" --latency -s "$lua" "$url")"
        rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$result")"
        p50="$(awk '$1 == "50%" {print $2}' <<<"$result")"
        p99="$(awk '$1 == "99%" {print $2}' <<<"$result")"
        errors="$(grep -E 'Non-2xx|Socket errors' <<<"$result" || true)"
        printf '| %s | %s | %s | %s | %s |%s\n' "$name" "$c" "$rps" "$p50" "$p99" "${errors:+ $errors}"
    done
done
