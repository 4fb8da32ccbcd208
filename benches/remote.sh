#!/usr/bin/env bash
# snap's remotes against boto3 (what `aws s3 cp` runs) on the same data and
# the same S3-compatible server (moto_server on 127.0.0.1), in the same run.
# Only the ratios are meaningful on a shared machine, and moto is an
# in-process Python server: it is the bottleneck of both sides, so the
# ratios say how much snap adds or saves per byte, not what S3 would do.
#
#   benches/remote.sh                    256 MiB fine-tune, 4 GiB memory run
#   FT_MB=64 SKIP_BIG=1 ROUNDS=3 benches/remote.sh
#
# Environment:
#   FT_MB=256        fine-tune workspace: frozen backbone size (MiB)
#   HEAD_KB          trained head size (default: 1 % of FT_MB)
#   ROUNDS=5         alternated rounds of each timed step (median kept)
#   BIG_MB=4096      size of the snapshot whose push / restore --from peak
#                    memory is measured (target: under 300 MiB)
#   SKIP_BIG=1       skip the memory run
#   MOTO_PY          a python with moto[server] and boto3 (default: python3.11)
#   SNAP             a prebuilt snap binary (default: cargo build --release)
#   TMPDIR           where the data goes (needs ~2 x BIG_MB + 4 x FT_MB free,
#                    and moto keeps what it is sent: about BIG_MB more)
#
# Measures, per round (snap and boto3 alternated, order swapped each round):
#   push      `snap push` of the first epoch's snapshot to an empty bucket
#             vs boto3 `upload_file` of every workspace file (8 MiB parts,
#             10 threads: the aws cli defaults)
#   restore   `snap restore --from REMOTE latest --target DIR`
#             vs boto3 `download_file` of every object
# then, once: bytes `snap push` sends for the second epoch (head retrained,
# log grown) against the workspace size and against what `aws s3 sync`
# would send (every changed file whole); and peak RSS of pushing and of
# restoring a BIG_MB snapshot (/usr/bin/time -v), boto3's beside it.
# Prints a table with targets and PASS/FAIL. Exits 0 unless a step crashed.

set -euo pipefail

FT_MB=${FT_MB:-256}
HEAD_KB=${HEAD_KB:-$((FT_MB * 1024 / 100))}
ROUNDS=${ROUNDS:-5}
BIG_MB=${BIG_MB:-4096}
SKIP_BIG=${SKIP_BIG:-0}
MOTO_PY=${MOTO_PY:-python3.11}

here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
mib() { calc "$1 / 1048576"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (lo > 0) printf "%.2f", hi / lo; else print "-" }'; }

"$MOTO_PY" -c 'import moto.server, boto3' 2>/dev/null || {
    say "error: $MOTO_PY has no moto[server] and boto3; pip install 'moto[server]' or set MOTO_PY"
    exit 2
}
[ -x /usr/bin/time ] || { say "error: /usr/bin/time is missing (apt-get install time)"; exit 2; }

if [ -z "${SNAP:-}" ]; then
    say "building snap (cargo build --release)"
    (cd "$here" && cargo build --release --quiet --bin snap)
    SNAP="$here/target/release/snap"
fi
SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-remote.XXXXXX")
moto_pid=""
cleanup() {
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
say "work directory: $WORK"

# --- the server ------------------------------------------------------------------

port=$("$MOTO_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MOTO_PY" -m moto.server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$moto_pid" 2>/dev/null || { cat "$WORK/moto.log" >&2; say "moto_server did not start"; exit 1; }
    sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=snap-bench AWS_SECRET_ACCESS_KEY=snap-bench-secret
unset AWS_PROFILE AWS_SESSION_TOKEN SNAP_SESSION
say "moto_server (pid $moto_pid) on $AWS_ENDPOINT_URL"

# The boto3 side: bucket making and emptying, and the reference transfers.
S3PY="$WORK/s3.py"
cat >"$S3PY" <<'EOF'
import os, sys
import boto3
from boto3.s3.transfer import TransferConfig

s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
# The aws cli's defaults: 8 MiB parts from 8 MiB on, 10 threads.
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=10)
verb, bucket = sys.argv[1], sys.argv[2]
if verb == "mb":
    s3.create_bucket(Bucket=bucket)
elif verb == "empty":
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
elif verb == "du":
    print(sum(o["Size"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in p.get("Contents", [])))
elif verb == "up":
    root = sys.argv[3]
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            s3.upload_file(p, bucket, os.path.relpath(p, root), Config=cfg)
elif verb == "down":
    root = sys.argv[3]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            p = os.path.join(root, o["Key"])
            os.makedirs(os.path.dirname(p), exist_ok=True)
            s3.download_file(bucket, o["Key"], p, Config=cfg)
EOF
s3() { "$MOTO_PY" "$S3PY" "$@"; }

# Runs "$@" under /usr/bin/time -v; wall time in T (s), peak RSS in RSS (KiB).
timed() {
    sync
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "$WORK/time.txt" "$@"
    t1=$(now)
    T=$(calc "$t1 - $t0")
    RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- data: a frozen-backbone fine-tune (benches/common/workloads.py) --------------

ws="$WORK/ws"
GEN="$here/benches/common/workloads.py"
say "workload: ${FT_MB} MiB frozen backbone + ${HEAD_KB} KiB head (epoch 1)"
python3 "$GEN" frozen "$ws" 1 2 $((FT_MB * 1048576)) $((HEAD_KB * 1024)) >/dev/null
WS_BYTES=$(du -sb "$ws" | cut -f1)
(cd "$ws" && "$SNAP" init >/dev/null && "$SNAP" commit -m "epoch 1" >/dev/null)
find "$ws" -type f -not -path '*/.snap/*' -exec cat {} + >/dev/null

# --- rounds -----------------------------------------------------------------------

SNAP_PUSH=() BOTO_UP=() SNAP_REST=() BOTO_DOWN=() PUSH_BYTES="" PUSH_REQ=""
snap_round() {
    local r=$1 b="snap-r$1"
    s3 mb "$b"
    (cd "$ws" && "$SNAP" remote add "r$r" "s3://$b/repo" >/dev/null)
    timed bash -c 'cd "$1" && "$2" push "$3" --json >"$4"' _ "$ws" "$SNAP" "r$r" "$WORK/push.json"
    SNAP_PUSH+=("$T")
    PUSH_BYTES=$(json_field bytes_uploaded <"$WORK/push.json")
    PUSH_REQ=$(json_field requests <"$WORK/push.json")
    rm -rf "$WORK/rest"
    timed bash -c 'cd "$1" && "$2" restore --from "$3" latest --target "$4" >/dev/null' _ "$ws" "$SNAP" "r$r" "$WORK/rest"
    SNAP_REST+=("$T")
    diff -r -x .snap "$ws" "$WORK/rest" >/dev/null || { say "error: snap restore --from differs from the workspace"; exit 1; }
    rm -rf "$WORK/rest"
    (cd "$ws" && "$SNAP" remote remove "r$r" >/dev/null)
    s3 empty "$b"
}
boto_round() {
    local b="boto-r$1"
    s3 mb "$b"
    # .snap is not part of what a user would upload.
    mv "$ws/.snap" "$WORK/dotsnap"
    timed "$MOTO_PY" "$S3PY" up "$b" "$ws"
    BOTO_UP+=("$T")
    mv "$WORK/dotsnap" "$ws/.snap"
    rm -rf "$WORK/down"
    timed "$MOTO_PY" "$S3PY" down "$b" "$WORK/down"
    BOTO_DOWN+=("$T")
    diff -r -x .snap "$ws" "$WORK/down" >/dev/null || { say "error: boto3 download differs from the workspace"; exit 1; }
    rm -rf "$WORK/down"
    s3 empty "$b"
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then snap_round "$r"; boto_round "$r"; else boto_round "$r"; snap_round "$r"; fi
    say "round $r: snap push ${SNAP_PUSH[-1]} s, boto3 upload ${BOTO_UP[-1]} s; snap restore --from ${SNAP_REST[-1]} s, boto3 download ${BOTO_DOWN[-1]} s"
done
sp=$(echo "${SNAP_PUSH[*]}" | median) bu=$(echo "${BOTO_UP[*]}" | median)
sr=$(echo "${SNAP_REST[*]}" | median) bd=$(echo "${BOTO_DOWN[*]}" | median)

# --- the second epoch ---------------------------------------------------------------

s3 mb snap-epochs
(cd "$ws" && "$SNAP" remote add origin s3://snap-epochs/repo >/dev/null && "$SNAP" push origin >/dev/null)
cp -a "$ws" "$WORK/ws1"
python3 "$GEN" frozen "$ws" 2 2 $((FT_MB * 1048576)) $((HEAD_KB * 1024)) >/dev/null
(cd "$ws" && "$SNAP" commit -m "epoch 2" >/dev/null && "$SNAP" push origin --json >"$WORK/push2.json")
E2_BYTES=$(json_field bytes_uploaded <"$WORK/push2.json")
E2_WS=$(du -sb --exclude=.snap "$ws" | cut -f1)
# What `aws s3 sync` sends: every file whose bytes changed, whole.
SYNC_BYTES=$(cd "$ws" && find . -type f -not -path './.snap/*' | while read -r f; do
    cmp -s "$f" "$WORK/ws1/$f" || stat -c %s "$f"
done | awk '{ s += $1 } END { print s + 0 }')
rm -rf "$WORK/ws1"

# --- memory: a BIG_MB snapshot --------------------------------------------------------

BIG_PUSH_RSS="" BIG_REST_RSS="" BIG_BOTO_RSS="" BIG_PUSH_T="" BIG_BOTO_T=""
if [ "$SKIP_BIG" != 1 ]; then
    say "memory run: one ${BIG_MB} MiB file (random bytes: nothing to compress or dedup)"
    big="$WORK/big"
    mkdir -p "$big"
    head -c $((BIG_MB * 1048576)) /dev/urandom >"$big/model.bin"
    (cd "$big" && "$SNAP" init >/dev/null && "$SNAP" commit >/dev/null)
    s3 mb snap-big
    (cd "$big" && "$SNAP" remote add big s3://snap-big/repo >/dev/null)
    timed bash -c 'cd "$1" && "$2" push big >/dev/null' _ "$big" "$SNAP"
    BIG_PUSH_RSS=$RSS BIG_PUSH_T=$T
    timed bash -c 'cd "$1" && "$2" restore --from big latest --target "$3" >/dev/null' _ "$big" "$SNAP" "$WORK/bigrest"
    BIG_REST_RSS=$RSS
    cmp "$big/model.bin" "$WORK/bigrest/model.bin" || { say "error: big restore --from differs"; exit 1; }
    rm -rf "$WORK/bigrest"
    s3 empty snap-big
    s3 mb boto-big
    mv "$big/.snap" "$WORK/bigsnap"
    timed "$MOTO_PY" "$S3PY" up boto-big "$big"
    BIG_BOTO_RSS=$RSS BIG_BOTO_T=$T
    s3 empty boto-big
    rm -rf "$big" "$WORK/bigsnap"
fi

# --- report -------------------------------------------------------------------------

mbps() { calc "$1 / 1048576 / $2"; }
echo
echo "snap remotes vs boto3 on moto_server, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
echo "workspace: $(mib "$WS_BYTES") MiB (${FT_MB} MiB frozen backbone, ${HEAD_KB} KiB head, configs, log); $ROUNDS alternated rounds, medians"
echo
printf '%-34s %10s %10s %8s %8s\n' "step" "snap s" "boto3 s" "ratio" "spread"
printf '%-34s %10s %10s %8s %8s\n' "push (empty bucket)" "$sp" "$bu" "$(calc "$sp / $bu")" "$(echo "${SNAP_PUSH[*]}" | spread)/$(echo "${BOTO_UP[*]}" | spread)"
printf '%-34s %10s %10s %8s %8s\n' "restore --from / download" "$sr" "$bd" "$(calc "$sr / $bd")" "$(echo "${SNAP_REST[*]}" | spread)/$(echo "${BOTO_DOWN[*]}" | spread)"
echo "(spread: slowest / fastest round of each side)"
echo "workspace throughput: snap push $(mbps "$WS_BYTES" "$sp") MiB/s (sent $(mib "$PUSH_BYTES") MiB in $PUSH_REQ requests), boto3 $(mbps "$WS_BYTES" "$bu") MiB/s; restore --from $(mbps "$WS_BYTES" "$sr") MiB/s, boto3 $(mbps "$WS_BYTES" "$bd") MiB/s"
echo
echo "second epoch: snap push sent $(mib "$E2_BYTES") MiB = $(calc "$E2_BYTES / $E2_WS") of the $(mib "$E2_WS") MiB workspace; aws s3 sync would send $(mib "$SYNC_BYTES") MiB (snap / sync = $(calc "$E2_BYTES / $SYNC_BYTES"))"
if [ "$SKIP_BIG" != 1 ]; then
    echo "memory, ${BIG_MB} MiB snapshot: snap push peak RSS $((BIG_PUSH_RSS / 1024)) MiB (${BIG_PUSH_T} s), restore --from $((BIG_REST_RSS / 1024)) MiB; boto3 upload $((BIG_BOTO_RSS / 1024)) MiB (${BIG_BOTO_T} s)"
fi
echo
pf() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 <= t + 0) ? "PASS" : "FAIL" }'; }
printf '%-52s %10s %8s %s\n' "target" "value" "limit" ""
printf '%-52s %10s %8s %s\n' "second epoch bytes sent / workspace" "$(calc "$E2_BYTES / $E2_WS")" "0.1" "$(pf "$(calc "$E2_BYTES / $E2_WS")" 0.1)"
if [ "$SKIP_BIG" != 1 ]; then
    printf '%-52s %10s %8s %s\n' "push peak RSS, ${BIG_MB} MiB snapshot (MiB)" "$((BIG_PUSH_RSS / 1024))" "300" "$(pf $((BIG_PUSH_RSS / 1024)) 300)"
    printf '%-52s %10s %8s %s\n' "restore --from peak RSS, ${BIG_MB} MiB snapshot (MiB)" "$((BIG_REST_RSS / 1024))" "300" "$(pf $((BIG_REST_RSS / 1024)) 300)"
fi
