"""Real training runs for benches/compare.sh, with torch (CPU, one thread,
seeded). Each call is one epoch: it loads the run's private state (outside
the workspace), trains, writes the epoch's checkpoint files into the
workspace the way the usual tools do, and prints the validation loss.

  train.py hf    WS STATE EPOCH BACKBONE_MB HEAD_MB
      an HF Trainer fine-tune: a frozen bf16 backbone and a trained fp32
      head (AdamW); every epoch a new folder
      checkpoints/checkpoint-STEP/{model.safetensors, optimizer.pt,
      scheduler.pt, trainer_state.json}; the two newest are kept
      (save_total_limit=2), as most fine-tunes are run.
  train.py full  WS STATE EPOCH MODEL_MB
      a full training: an MLP whose every weight is trained (AdamW), saved
      with its optimizer state as checkpoints/epoch_N.pt (torch.save).
"""

import json
import math
import os
import shutil
import sys

# This directory has a safetensors.py of its own; the package is wanted.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.dont_write_bytecode = True

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(1)
STEPS = 20      # optimizer steps per epoch
BATCH = 32


def hf(ws, state, epoch, backbone_mb, head_mb):
    torch.manual_seed(1000 + epoch)
    d = 1024
    blocks = 6
    # bf16 backbone: blocks of [rows, d] bf16 (2 bytes per value).
    rows = max(1, backbone_mb * (1 << 20) // (blocks * d * 2))
    # fp32 head: two layers d -> hidden -> d.
    hidden = max(1, head_mb * (1 << 20) // (2 * d * 4))
    if epoch == 1:
        g = torch.Generator().manual_seed(7)
        backbone = {f"backbone.blocks.{i}.weight": (torch.randn(rows, d, generator=g) * 0.02).to(torch.bfloat16)
                    for i in range(blocks)}
        head = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, d))
        opt = torch.optim.AdamW(head.parameters(), lr=1e-4, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
        step = 0
    else:
        st = torch.load(state, weights_only=False)
        backbone, head, step = st["backbone"], st["head"], st["step"]
        opt = torch.optim.AdamW(head.parameters(), lr=1e-4, weight_decay=0.01)
        opt.load_state_dict(st["opt"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
        sched.load_state_dict(st["sched"])
    first = backbone["backbone.blocks.0.weight"].float()
    loss = torch.tensor(0.0)
    for _ in range(STEPS):
        x = torch.randn(BATCH, rows) @ first / math.sqrt(rows)   # frozen features
        y = torch.roll(x, 1, dims=1)
        loss = torch.nn.functional.mse_loss(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
    out = os.path.join(ws, "checkpoints", f"checkpoint-{step}")
    os.makedirs(out, exist_ok=True)
    tensors = dict(backbone)
    tensors.update({f"head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()})
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    torch.save(opt.state_dict(), os.path.join(out, "optimizer.pt"))
    torch.save(sched.state_dict(), os.path.join(out, "scheduler.pt"))
    with open(os.path.join(out, "trainer_state.json"), "w") as f:
        json.dump({"global_step": step, "epoch": epoch, "log_history": [{"loss": loss.item(), "step": step}]}, f, indent=2)
    saves = sorted(os.listdir(os.path.join(ws, "checkpoints")), key=lambda n: int(n.split("-")[1]))
    for old in saves[:-2]:
        shutil.rmtree(os.path.join(ws, "checkpoints", old))
    torch.save({"backbone": backbone, "head": head, "opt": opt.state_dict(), "sched": sched.state_dict(),
                "step": step}, state)
    print(f"{loss.item():.5f}")


def full(ws, state, epoch, model_mb):
    torch.manual_seed(2000 + epoch)
    d = 512
    # params ~ layers * d * d * 4 bytes; the optimizer state doubles it on disk.
    layers = max(2, model_mb * (1 << 20) // (3 * d * d * 4))
    if epoch == 1:
        torch.manual_seed(11)
        model = torch.nn.Sequential(*[m for _ in range(layers) for m in (torch.nn.Linear(d, d), torch.nn.Tanh())])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    else:
        st = torch.load(state, weights_only=False)
        model = st["model"]
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
        opt.load_state_dict(st["opt"])
    target = torch.nn.Linear(d, d)
    torch.nn.init.normal_(target.weight, std=0.05, generator=torch.Generator().manual_seed(3))
    loss = torch.tensor(0.0)
    for _ in range(STEPS):
        x = torch.randn(BATCH, d)
        with torch.no_grad():
            y = torch.tanh(target(x))
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    os.makedirs(os.path.join(ws, "checkpoints"), exist_ok=True)
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict()},
               os.path.join(ws, "checkpoints", f"epoch_{epoch}.pt"))
    with open(os.path.join(ws, "train.log"), "a") as f:
        f.write(f"epoch {epoch} loss {loss.item():.6f}\n")
    torch.save({"model": model, "opt": opt.state_dict()}, state)
    print(f"{loss.item():.5f}")


mode, ws, state, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "hf":
    hf(ws, state, epoch, int(sys.argv[5]), int(sys.argv[6]))
else:
    full(ws, state, epoch, int(sys.argv[5]))
