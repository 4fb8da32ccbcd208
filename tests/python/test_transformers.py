"""SnapCallback with a real HF Trainer: a tiny model built from a config
(no hub access), 2 saves, save_total_limit=1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from snapstore import Repo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from snapstore.transformers import SnapCallback, latest_metrics  # noqa: E402


class Pairs(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
    """Token sequences labelled by whether their first token is even."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 32, (n, 8), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": int(self.ids[i, 0] % 2)}


def tiny_trainer(out: Path, callback: Any) -> Any:
    """A tiny BERT from a config (no hub), 4 steps, a save and an eval every 2."""
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=4, save_steps=2, eval_steps=2, logging_steps=1,
        eval_strategy="steps", save_strategy="steps", save_total_limit=1,
        metric_for_best_model="eval_loss", greater_is_better=False,
        per_device_train_batch_size=8, use_cpu=True, report_to=[],
        disable_tqdm=True, seed=0,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=Pairs(32, 1), eval_dataset=Pairs(16, 2),
        callbacks=[callback],
    )


def test_two_saves_with_save_total_limit_1_are_both_restorable(
    repo: Repo, workspace: Path, tmp_path: Path
) -> None:
    out = workspace / "out"
    snap = SnapCallback(repo=repo, session="hf")
    trainer = tiny_trainer(out, snap)
    trainer.train()

    # The Trainer kept one checkpoint; the store has both.
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-4"]
    log = repo.log(session="hf")
    assert [s.step for s in log] == [2, 4]
    assert all("eval_loss" in s.metrics and "loss" in s.metrics for s in log)
    for s in log:
        target = tmp_path / f"restored-{s.step}"
        repo.restore(f"hf@step={s.step}", target=target)
        ckpt = target / "out" / f"checkpoint-{s.step}"
        state = transformers.TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
        assert state.global_step == s.step
        restored = transformers.BertForSequenceClassification.from_pretrained(str(ckpt))
        assert restored.config.hidden_size == 16

    best = repo.show("hf/best")
    best_step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[1])
    assert best.step == best_step
    assert best.metrics["eval_loss"] == min(s.metrics["eval_loss"] for s in log)


TRAIN_UNDER_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_transformers import tiny_trainer
from snapstore.transformers import SnapCallback
tiny_trainer(Path("out"), SnapCallback()).train()
"""


def test_under_snap_run_the_callback_joins_the_run(repo: Repo, workspace: Path) -> None:
    script = TRAIN_UNDER_RUN.format(tests=str(Path(__file__).parent))
    subprocess.run(
        [repo._cli.binary, "run", "--session", "hf-run", "--best", "eval_loss",
         "--", sys.executable, "-c", script],
        cwd=workspace, check=True, capture_output=True,
    )
    log = repo.log(session="hf-run")
    saves = [s for s in log if s.step is not None]
    assert [s.step for s in saves] == [2, 4]
    assert log[0].labels.get("signal") == "archive" and "outcome" in log[-1].labels
    # The runner ranks the callback's commits: its best is the lower eval_loss.
    best = repo.show("hf-run/best")
    assert best.metrics["eval_loss"] == min(s.metrics["eval_loss"] for s in saves)
    assert "out/checkpoint-2/model.safetensors" in repo.show(saves[0].id).paths


def test_latest_metrics_merges_log_history_newest_last() -> None:
    history: List[Dict[str, Any]] = [
        {"loss": 1.0, "learning_rate": 0.1, "epoch": 0.5, "step": 1},
        {"eval_loss": 0.9, "epoch": 0.5, "step": 1},
        {"loss": 0.8, "epoch": 1.0, "step": 2, "note": "text"},
    ]
    assert latest_metrics(history) == {"loss": 0.8, "learning_rate": 0.1, "eval_loss": 0.9}
