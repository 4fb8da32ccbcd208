"""The seeded `full` and `frozen` workloads of benches/compare.sh (also
used by benches/remote.sh). Standard library only:
  python3 workloads.py full WS EPOCH SEED TOTAL_BYTES
  python3 workloads.py frozen WS EPOCH SEED BACKBONE_BYTES HEAD_BYTES
writes epoch EPOCH into workspace WS and prints its validation loss.
"""
import json, math, os, random, sys

sys.dont_write_bytecode = True  # no __pycache__ in benches/common
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # weights.py beside it
from weights import weights

def nudge(rng, buf, start, end, nbytes):
    """A small update: resample the nbytes low bytes of every fp32 value."""
    count = (end - start) // 4
    for k in range(nbytes):
        buf[start + k:end:4] = rng.randbytes(count)

def layout(spec):
    """spec: [(name, nbytes)] -> header bytes (8-aligned) and [(name, start, end)]."""
    meta, offs, off = {}, [], 0
    for name, n in spec:
        n -= n % 1024
        meta[name] = {"dtype": "F32", "shape": [n // 1024, 256], "data_offsets": [off, off + n]}
        offs.append((name, off, off + n))
        off += n
    return meta, offs, off

def write_st(path, meta, metadata, data):
    h = dict(meta)
    h["__metadata__"] = metadata
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        f.write(data)

def read_st(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.read(n)
        return bytearray(f.read())

def workspace(ws, seed):
    """Unchanging files: configs, a tokenizer, code."""
    rng = random.Random(seed)
    for d in ("config", "logs", "models", "src"):
        os.makedirs(os.path.join(ws, d), exist_ok=True)
    with open(os.path.join(ws, "config/train.yaml"), "w") as f:
        f.write("".join(f"{k}: {v}\n" for k, v in [
            ("lr", "3.0e-4"), ("batch_size", 64), ("warmup_steps", 2000), ("weight_decay", 0.05),
            ("optimizer", "adamw"), ("scheduler", "cosine"), ("seed", seed), ("precision", "fp32")]))
    with open(os.path.join(ws, "config/model.json"), "w") as f:
        json.dump({"d_model": 1024, "n_layers": 4, "n_heads": 16, "vocab": 32000}, f, indent=2)
    vocab = {"".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) + str(i): i
             for i in range(32000)}
    with open(os.path.join(ws, "config/tokenizer.json"), "w") as f:
        json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": vocab}}, f)
    for name in ("train.py", "model.py", "data.py"):
        with open(os.path.join(ws, "src", name), "w") as f:
            for i in range(400):
                f.write(f"    x{i} = layer_{i % 7}(x{i - 1 if i else 0}, scale={rng.random():.4f})  # step {i}\n")

def log(ws, rng, epoch, steps, loss0):
    with open(os.path.join(ws, "logs/train.log"), "a") as f:
        for s in range(steps):
            step = (epoch - 1) * steps + s
            loss = loss0 * math.exp(-step / (steps * 4)) + abs(rng.gauss(0, 0.03))
            f.write(f"epoch {epoch} step {step} loss {loss:.5f} lr {3e-4 * min(1, step / 200):.3e} "
                    f"grad_norm {abs(rng.gauss(1, 0.2)):.4f} tok/s {rng.randint(41000, 43000)}\n")

def val_loss(rng, epoch, loss0):
    return loss0 * math.exp(-0.25 * epoch) + 0.1 + rng.gauss(0, 0.04)

def full(ws, epoch, seed, total):
    rng = random.Random(seed * 1000 + epoch)
    if epoch == 1:
        workspace(ws, seed)
    n_layers = 4
    spec = [("embed.weight", total // 5)]
    per = (total - 2 * (total // 5)) // n_layers
    for i in range(n_layers):
        spec += [(f"layers.{i}.attn.weight", per * 2 // 5), (f"layers.{i}.mlp.weight", per * 3 // 5 - 4096),
                 (f"layers.{i}.norm.weight", 4096)]
    spec.append(("head.weight", total - sum(n for _, n in spec)))
    meta, offs, size = layout(spec)
    if epoch == 1:
        data = weights(rng, size)
    else:
        data = read_st(os.path.join(ws, f"models/epoch_{epoch - 1:02d}.safetensors"))
        for _, s, e in offs:
            nudge(rng, data, s, e, 2)
    write_st(os.path.join(ws, f"models/epoch_{epoch:02d}.safetensors"), meta,
             {"format": "pt", "epoch": f"{epoch:04d}"}, data)
    log(ws, rng, epoch, 500, 2.5)
    print(f"{val_loss(rng, epoch, 2.5):.5f}")

def frozen(ws, epoch, seed, backbone, head):
    rng = random.Random(seed * 1000 + epoch)
    path = os.path.join(ws, "models/checkpoint.safetensors")
    if epoch == 1:
        workspace(ws, seed)
    blocks = 6
    spec = [(f"backbone.blocks.{i}.weight", backbone // blocks) for i in range(blocks)]
    spec += [("head.proj.weight", head * 3 // 4), ("head.out.weight", head - head * 3 // 4)]
    meta, offs, size = layout(spec)
    if epoch == 1:
        data = weights(rng, size)
    else:
        data = read_st(path)
        fresh = weights(rng, size - offs[blocks][1])   # the head is retrained
        data[offs[blocks][1]:] = fresh
    write_st(path, meta, {"format": "pt", "epoch": f"{epoch:04d}"}, data)
    log(ws, rng, epoch, 200, 1.2)
    print(f"{val_loss(rng, epoch, 1.2):.5f}")

mode, ws, epoch, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "full":
    full(ws, epoch, seed, int(sys.argv[5]))
else:
    frozen(ws, epoch, seed, int(sys.argv[5]), int(sys.argv[6]))
