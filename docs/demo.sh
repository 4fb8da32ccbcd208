#!/usr/bin/env bash
# The README demo: snap doing its main job on a small, seeded training run.
#
#   bash docs/demo.sh                  # from the repository root (or anywhere)
#   SNAP_DEMO_KEEP=1 bash docs/demo.sh # keep the temporary workspace to explore
#
# Needs: the Rust toolchain (cargo), python3 (standard library only), cmp.
# No network. Everything happens in a temporary directory that is removed at
# the end. Exits non-zero if any verification fails.
#
# What it does:
#   1. builds snap (release);
#   2. creates a training workspace (config/, logs/, models/, a checkpoint in
#      the root) and "trains" a tiny model for 6 epochs with a seeded pure-Python
#      trainer that writes a real safetensors file per epoch: a frozen 8 MiB
#      embedding that never changes, and small tensors that SGD updates;
#   3. commits the workspace after every epoch with session, epoch and metrics;
#   4. tags the epoch with the lowest val_loss `best`, shows `snap log` and
#      `snap stats`;
#   5. restores `best` into a new directory and checks it is byte-identical
#      to what was committed at that epoch; runs `snap check --read-data`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EPOCHS=6
SESSION=demo-run-1

section() { printf '\n=== %s ===\n' "$*"; }
fail() {
    echo "demo: FAILED: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
section "1. Build snap (cargo build --release)"
(cd "$ROOT" && cargo build --release)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
SNAP_BIN=$TARGET_DIR/release/snap
[[ -x $SNAP_BIN ]] || fail "no binary at $SNAP_BIN"
snap() { "$SNAP_BIN" "$@"; }

# A clean environment: these would redirect snap to another repository or session.
unset SNAP_REPO SNAP_SESSION

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-demo.XXXXXX")
cleanup() {
    if [[ ${SNAP_DEMO_KEEP:-} == 1 ]]; then
        echo "demo: kept $WORK (workspace in $WORK/workspace)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
WS=$WORK/workspace
mkdir -p "$WS/config" "$WS/logs" "$WS/models" "$WORK/expected"

# ---------------------------------------------------------------------------
# The trainer. Standard library only, seeded, deterministic. It prints one
# line per epoch in the protocol of `snap run` (docs/commands.md):
#   SNAP {"epoch": N, "metrics": {"val_loss": ..., "train_loss": ...}}
cat >"$WORK/train.py" <<'PYEOF'
"""A tiny, seeded training run. Model: a frozen "pretrained" token embedding
(8192 x 256 float32, 8 MiB, never updated), a trainable adapter (32 x 256,
ReLU) and a trainable regression head (1 x 32). Each epoch: one SGD pass over
128 samples, then models/epoch_NN.safetensors, lines in logs/, and a copy to
./best_model.safetensors when val_loss improves.

--start K resumes from models/epoch_{K-1}.safetensors, so running the epochs
one process each or all in one process writes identical bytes.
"""
import argparse, json, math, os, random, struct, sys
from array import array

VOCAB, DIM, HIDDEN, TOKENS = 8192, 256, 32, 4
N_TRAIN, N_VAL, SEED = 128, 256, 20240607


def f32(values):
    return array("f", values)


def save_safetensors(path, tensors):
    """safetensors: u64 LE header length, JSON header, raw little-endian data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + 4 * len(data)]}
        offset += 4 * len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # pad: tensor data starts 8-byte aligned
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, data in tensors:
            if sys.byteorder == "big":
                data = array("f", data)
                data.byteswap()
            f.write(data.tobytes())
    os.replace(path + ".tmp", path)


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header, body = json.loads(f.read(n)), f.read()
    out = {}
    for name, t in header.items():
        if name != "__metadata__":
            a = array("f")
            a.frombytes(body[t["data_offsets"][0]:t["data_offsets"][1]])
            if sys.byteorder == "big":
                a.byteswap()
            out[name] = a
    return out


def dataset(emb):
    rng = random.Random(SEED + 1)
    secret = [rng.gauss(0, 2 / math.sqrt(DIM)) for _ in range(DIM)]

    def sample():
        toks = [rng.randrange(VOCAB) for _ in range(TOKENS)]
        feat = [sum(emb[t * DIM + j] for t in toks) / TOKENS for j in range(DIM)]
        y = math.tanh(sum(s * v for s, v in zip(secret, feat))) + rng.gauss(0, 0.3)
        return feat, y

    return [sample() for _ in range(N_TRAIN)], [sample() for _ in range(N_VAL)]


def forward(A, w, b, feat):
    h = [max(0.0, sum(A[i * DIM + j] * feat[j] for j in range(DIM))) for i in range(HIDDEN)]
    return h, sum(wi * hi for wi, hi in zip(w, h)) + b[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, default=1, help="first epoch to run")
    ap.add_argument("--epochs", type=int, required=True, help="last epoch to run")
    args = ap.parse_args()
    cfg = json.load(open("config/training_config.json"))
    if args.start == 1:
        rng = random.Random(cfg["seed"])
        emb = f32(rng.gauss(0, 1) for _ in range(VOCAB * DIM))
        A = f32(rng.gauss(0, 1 / math.sqrt(DIM)) for _ in range(HIDDEN * DIM))
        w = f32(rng.gauss(0, 1 / math.sqrt(HIDDEN)) for _ in range(HIDDEN))
        b, best = f32([0.0]), math.inf
    else:
        t = load_safetensors(f"models/epoch_{args.start - 1:02d}.safetensors")
        emb, A, w, b = t["embed.weight"], t["adapter.weight"], t["head.weight"], t["head.bias"]
        best = json.load(open("logs/best.json"))["val_loss"]
    train, val = dataset(emb)

    for epoch in range(args.start, args.epochs + 1):
        lr = cfg["lr"] * cfg["lr_decay"] ** (epoch - 1)
        A, w, b = list(A), list(w), list(b)
        order = list(range(N_TRAIN))
        random.Random(cfg["seed"] + epoch).shuffle(order)
        train_loss = 0.0
        with open("logs/training.log", "a") as log:
            for step, i in enumerate(order, 1):
                feat, y = train[i]
                h, pred = forward(A, w, b, feat)
                err = pred - y
                train_loss += err * err
                for k in range(HIDDEN):
                    if h[k] > 0.0:
                        g, row = lr * err * w[k], k * DIM
                        for j in range(DIM):
                            A[row + j] -= g * feat[j]
                    w[k] -= lr * err * h[k]
                b[0] -= lr * err
                if step % 32 == 0:
                    log.write(f"epoch {epoch} step {step:3d} loss {err * err:.6f} lr {lr:.6f}\n")
            A, w, b = f32(A), f32(w), f32(b)
            val_loss = round(sum((forward(A, w, b, f)[1] - y) ** 2 for f, y in val) / N_VAL, 6)
            train_loss = round(train_loss / N_TRAIN, 6)
            log.write(f"epoch {epoch} train_loss {train_loss:.6f} val_loss {val_loss:.6f}\n")
        path = f"models/epoch_{epoch:02d}.safetensors"
        save_safetensors(path, [("embed.weight", [VOCAB, DIM], emb),
                                ("adapter.weight", [HIDDEN, DIM], A),
                                ("head.weight", [1, HIDDEN], w),
                                ("head.bias", [1], b)])
        metrics = {"val_loss": val_loss, "train_loss": train_loss}
        with open("logs/metrics.jsonl", "a") as m:
            m.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
        if val_loss < best:  # what people do by hand: keep a copy of the best model
            best = val_loss
            with open(path, "rb") as src, open("best_model.safetensors.tmp", "wb") as dst:
                dst.write(src.read())
            os.replace("best_model.safetensors.tmp", "best_model.safetensors")
        with open("logs/best.json", "w") as f:
            json.dump({"val_loss": best}, f)
        print("SNAP " + json.dumps({"epoch": epoch, "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()
PYEOF

# Every file and directory under $1 (except .snap/), one line each:
# kind, mode, mtime in ns, size, SHA-256, path. Two trees with the same
# manifest hold the same bytes with the same modes and mtimes.
manifest() {
    python3 - "$1" <<'PYEOF'
import hashlib, os, sys
root = sys.argv[1]
for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if not (d == root and x == ".snap"))
    for name in dirs + sorted(files):
        p = os.path.join(d, name)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        if os.path.isdir(p):
            print("dir ", oct(st.st_mode & 0o7777), st.st_mtime_ns, "-", "-", rel)
        else:
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            print("file", oct(st.st_mode & 0o7777), st.st_mtime_ns, st.st_size, h, rel)
PYEOF
}

# ---------------------------------------------------------------------------
section "2. A training workspace and a repository (snap init)"
cd "$WS"
cat >config/training_config.json <<'EOF'
{"model": "tiny-adapter", "lr": 0.01, "lr_decay": 0.9, "seed": 20240607, "epochs": 6}
EOF
snap init
echo "workspace: $WS"

# ---------------------------------------------------------------------------
section "3. Train $EPOCHS epochs, one snap commit per epoch"
# One epoch per trainer process, then a commit, so each snapshot is exactly
# the state after its epoch (the demo checks that). The training runner reads
# the same SNAP lines, so this loop and the tagging below can become one
# command (docs/training.md):
#   snap run --session "$SESSION" --best val_loss -- python3 "$WORK/train.py" --epochs "$EPOCHS"
# It commits while training goes on and applies retention at the end, so its
# epoch snapshots are not pinned to exact epoch states the way these are.
commit_epoch() { # EPOCH VAL_LOSS TRAIN_LOSS
    snap commit -m "epoch $1" --session "$SESSION" --epoch "$1" \
        --metric "val_loss=$2" --metric "train_loss=$3"
    manifest "$WS" >"$WORK/expected/epoch_$1.manifest" # what this snapshot must restore to
}
for ((epoch = 1; epoch <= EPOCHS; epoch++)); do
    line=$(python3 "$WORK/train.py" --start "$epoch" --epochs "$epoch" | grep '^SNAP ')
    read -r val_loss train_loss < <(python3 -c '
import json, sys
m = json.loads(sys.argv[1][len("SNAP "):])["metrics"]
print(m["val_loss"], m["train_loss"])' "$line")
    echo "epoch $epoch: val_loss=$val_loss train_loss=$train_loss"
    commit_epoch "$epoch" "$val_loss" "$train_loss"
done

section "4. A last commit with nothing changed: no file re-read, no byte stored"
snap commit -m "end of run" --session "$SESSION" --json >"$WORK/last.json"
python3 - "$WORK/last.json" <<'PYEOF' || fail "an unchanged workspace stored new data"
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(f"{s['files']} files, {s['files_read']} read again, {s['new_chunks']} new chunks, "
      f"{s['new_stored_bytes']} bytes stored")
sys.exit(0 if s["new_chunks"] == 0 and s["new_stored_bytes"] == 0 else 1)
PYEOF

# ---------------------------------------------------------------------------
section "5. Tag the best epoch (lowest val_loss) as 'best'"
snap log --session "$SESSION" --json >"$WORK/log.json"
best_epoch=$(python3 - "$WORK/log.json" <<'PYEOF'
import json, sys
snaps = [s for s in json.load(open(sys.argv[1])) if s["epoch"] is not None]
print(min(snaps, key=lambda s: (s["metrics"]["val_loss"], s["epoch"]))["epoch"])
PYEOF
)
echo "best epoch: $best_epoch"
snap tag best "$SESSION@$best_epoch" # REV syntax SESSION@EPOCH
best_ckpt=models/epoch_$(printf '%02d' "$best_epoch").safetensors

section "6. snap log"
snap log

section "7. snap stats"
snap stats
snap stats --json >"$WORK/stats.json"
python3 - "$WORK/stats.json" <<'PYEOF' || fail "the repository is not smaller than the data it holds"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{s['logical_bytes'] / 2**20:.1f} MiB of snapshots stored in {s['stored_bytes'] / 2**20:.1f} MiB")
sys.exit(0 if s["stored_bytes"] * 2 < s["logical_bytes"] else 1)
PYEOF

# ---------------------------------------------------------------------------
section "8. Restore 'best' into a new directory and verify it byte for byte"
snap show best
snap restore best --target "$WORK/restored"
manifest "$WORK/restored" >"$WORK/restored.manifest"
if ! cmp "$WORK/expected/epoch_$best_epoch.manifest" "$WORK/restored.manifest"; then
    diff "$WORK/expected/epoch_$best_epoch.manifest" "$WORK/restored.manifest" >&2 || true
    fail "the restored tree differs from what was committed at epoch $best_epoch"
fi
echo "ok: every file, directory, mode and mtime matches epoch $best_epoch"
# Checkpoints are never rewritten after their epoch, so the live files are
# the committed bytes: compare them directly too.
cmp "$WORK/restored/$best_ckpt" "$WS/$best_ckpt" || fail "$best_ckpt differs"
cmp "$WORK/restored/best_model.safetensors" "$WS/best_model.safetensors" ||
    fail "best_model.safetensors differs"
cmp "$WORK/restored/best_model.safetensors" "$WORK/restored/$best_ckpt" ||
    fail "best_model.safetensors is not the best epoch's checkpoint"
echo "ok: cmp $best_ckpt and best_model.safetensors"

section "9. One file back: snap restore PATH and snap cat REV:PATH"
snap restore best "$best_ckpt" --target "$WORK/one-file"
cmp "$WORK/one-file/$best_ckpt" "$WS/$best_ckpt" || fail "single-file restore differs"
snap cat "best:best_model.safetensors" >"$WORK/cat.safetensors"
cmp "$WORK/cat.safetensors" "$WS/best_model.safetensors" || fail "snap cat output differs"
echo "ok: the restored file and the cat output equal the checkpoint"
echo "the training log as it was at epoch $best_epoch ends with:"
snap cat best:logs/training.log >"$WORK/best.log"
tail -n 2 "$WORK/best.log"

section "10. snap check --read-data"
snap check --read-data || fail "snap check found damage"

section "Done: every check passed"
