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
#   3. runs the training under `snap run --best val_loss`: a snapshot before
#      the run, one per epoch with its metrics (the trainer runs
#      `snap commit --epoch N` itself, so each snapshot is exactly that
#      epoch's state), `best` following the lowest val_loss, a final snapshot
#      with the outcome, then retention;
#   4. shows `snap log` and `snap stats`;
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
import argparse, json, math, os, random, struct, subprocess, sys
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
        if os.environ.get("SNAP_SESSION"):
            # Under `snap run`: commit this epoch ourselves. The command waits
            # for the commit, so the snapshot is exactly this epoch's files.
            subprocess.run(["snap", "commit", "-m", f"epoch {epoch}", "--epoch", str(epoch),
                            "--metric", f"val_loss={val_loss}", "--metric", f"train_loss={train_loss}"],
                           check=True, stdout=subprocess.DEVNULL)
            if os.environ.get("DEMO_EXPECTED"):  # what this snapshot must restore to
                with open(os.path.join(os.environ["DEMO_EXPECTED"], f"epoch_{epoch}.manifest"), "w") as out:
                    subprocess.run([sys.executable, os.environ["DEMO_MANIFEST"], "."], stdout=out, check=True)
            print(f"epoch {epoch}: val_loss={val_loss:.6f} train_loss={train_loss:.6f}", flush=True)
        else:
            print("SNAP " + json.dumps({"epoch": epoch, "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()
PYEOF

# Every file and directory under $1 (except .snap/), one line each:
# kind, mode, mtime in ns, size, SHA-256, path. Two trees with the same
# manifest hold the same bytes with the same modes and mtimes.
cat >"$WORK/manifest.py" <<'PYEOF'
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
manifest() { python3 "$WORK/manifest.py" "$1"; }

# ---------------------------------------------------------------------------
section "2. A training workspace and a repository (snap init)"
cd "$WS"
cat >config/training_config.json <<'EOF'
{"model": "tiny-adapter", "lr": 0.01, "lr_decay": 0.9, "seed": 20240607, "epochs": 6}
EOF
snap init    # says where the workspace and the repository are

# ---------------------------------------------------------------------------
section "3. Train $EPOCHS epochs under snap run"
# The runner snapshots the workspace first, then the trainer commits each
# epoch itself (it joins the session through SNAP_SESSION), `best` and
# $SESSION/best follow the lowest val_loss, a final snapshot records the
# outcome, and retention keeps, of each of the 5 newest sessions, its pre-run
# snapshot, final snapshot, best and last 5 epochs, plus every tagged
# snapshot; what it forgets is journalled (docs/training.md).
export PATH="$TARGET_DIR/release:$PATH" DEMO_EXPECTED="$WORK/expected" DEMO_MANIFEST="$WORK/manifest.py"
snap run --session "$SESSION" --best val_loss --json -- \
    python3 "$WORK/train.py" --start 1 --epochs "$EPOCHS" | tee "$WORK/run.out"
tail -n 1 "$WORK/run.out" >"$WORK/run.json" # --json: the report is the last line of stdout
python3 - "$WORK/run.json" <<'PYEOF' || fail "snap run did not finish cleanly"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"session {r['session']}: {r['outcome']}, {len(r['snapshots'])} snapshots, "
      f"best val_loss {r['best'][1]:.6f}, retention forgot {r['forgotten']}")
sys.exit(0 if r["exit_code"] == 0 and not r["errors"] and r["best"] else 1)
PYEOF

section "4. The final snapshot: nothing changed since the last epoch, no byte stored"
last=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshots"][-1])' "$WORK/run.json")
snap show "$last" --json >"$WORK/last.json"
python3 - "$WORK/last.json" <<'PYEOF' || fail "an unchanged workspace stored new data"
import json, sys
s = json.load(open(sys.argv[1]))["snapshot"]
m = s["summary"]
print(f"outcome: {s['labels']['outcome']}; {m['files']} files, {m['files_read']} read again, "
      f"{m['new_chunks']} new chunks, {m['new_stored_bytes']} bytes stored")
sys.exit(0 if m["new_chunks"] == 0 and m["new_stored_bytes"] == 0 else 1)
PYEOF

# ---------------------------------------------------------------------------
section "5. 'best' is the epoch with the lowest val_loss"
best_epoch=$(python3 - "$WS/logs/metrics.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(min(rows, key=lambda r: (r["val_loss"], r["epoch"]))["epoch"])
PYEOF
)
tagged=$(snap show best --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["epoch"])')
echo "lowest val_loss at epoch $best_epoch; 'best' names epoch $tagged"
[[ $tagged == "$best_epoch" ]] || fail "best names epoch $tagged, expected $best_epoch"
snap tags
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

section "11. snap log: the run's pre-run snapshot, its epochs and best"
snap log --session "$SESSION"
snap log --session "$SESSION" --json >"$WORK/session.json"
python3 - "$WORK/session.json" "$EPOCHS" "$best_epoch" <<'PYEOF' || fail "retention dropped what the run relies on"
import json, sys
snaps = json.load(open(sys.argv[1]))
epochs, best = int(sys.argv[2]), int(sys.argv[3])
pre_run = [s for s in snaps if s["labels"].get("signal") == "archive"]
final = [s for s in snaps if "outcome" in s["labels"]]
kept = sorted(s["epoch"] for s in snaps if s["epoch"] is not None)
want = sorted(set(range(max(1, epochs - 4), epochs + 1)) | {best})
print(f"pre-run snapshot {pre_run[0]['id'][:8] if pre_run else 'MISSING'}, "
      f"epochs {kept} (the last 5 and the best, {best}), final {'yes' if final else 'MISSING'}")
sys.exit(0 if len(pre_run) == 1 and len(final) == 1 and kept == want else 1)
PYEOF
echo "what retention forgot (journalled; their metrics stay):"
snap log --forgotten

section "Done: every check passed"
