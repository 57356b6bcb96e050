"""Checkpoints: atomic writes, exact resume, safe loading, clear errors."""

import os
import pickle
import signal

import pytest
import torch
from trainhelpers import TinyLSTM, read_metrics, small_config, text_ids

from rnnkit.train import CheckpointError, Trainer, load_checkpoint, save_checkpoint


def make_trainer(run_dir, on_eval=None, ema_decay=0.0):
    config = small_config(
        ema_decay=ema_decay,
        max_steps=16,
        eval_every=4,
        burn_in=3,
        lr_schedule="cosine",
        warmup_steps=2,
        clip="auto",
        lr=3e-3,
    )
    model = TinyLSTM(dropout=0.3)  # dropout draws from the RNG: resume must restore it
    return Trainer(
        model, config, text_ids(800), text_ids(200, seed=1), run_dir=run_dir, on_eval=on_eval
    )


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_interrupt_and_resume_equals_uninterrupted_bit_for_bit(tmp_path, ema_decay):
    straight = make_trainer(tmp_path / "a", ema_decay=ema_decay)
    straight.fit()

    def interrupt_at_8(trainer, metrics):
        if metrics["step"] == 8:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: finish the step, save, return

    first = make_trainer(tmp_path / "b", on_eval=interrupt_at_8, ema_decay=ema_decay)
    summary = first.fit()
    assert summary["stop_reason"] == "interrupted" and summary["steps"] == 9
    resumed = make_trainer(tmp_path / "b", ema_decay=ema_decay).resume(tmp_path / "b")
    assert resumed.step == 9
    resumed.fit()

    assert without_time(read_metrics(tmp_path / "b")) == without_time(read_metrics(tmp_path / "a"))
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for (name, a), b in zip(
        straight.eval_model.state_dict().items(),
        resumed.eval_model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name  # the averaged weights too, when there are any
    assert resumed.clipper.history == straight.clipper.history


def test_checkpoint_holds_everything_needed(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.config.max_steps = 5
    trainer.fit()
    ckpt = load_checkpoint(tmp_path / "last.pt")
    for key in (
        "model",
        "optimizer",
        "scheduler",
        "clipper",
        "early_stopping",
        "data",
        "ranks",
        "config",
        "step",
    ):
        assert key in ckpt
    assert ckpt["data"]["pos"] == 50 and len(ckpt["clipper"]["history"]) == 5
    hidden = ckpt["ranks"][0]["state"]
    assert isinstance(hidden, tuple) and hidden[0].shape == (1, 4, 12)
    assert set(ckpt["ranks"][0]["rng"]) == {"torch", "cuda", "python", "numpy"}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"x": torch.ones(2)}, path)
    save_checkpoint({"x": torch.zeros(2)}, path)
    assert os.listdir(tmp_path) == ["c.pt"]
    assert torch.equal(load_checkpoint(path)["x"], torch.zeros(2))


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_tampered_checkpoint_does_not_run_code(tmp_path):
    marker = tmp_path / "pwned"
    RunsCode.marker = marker
    for name, write in [
        ("zip.pt", lambda p: torch.save({"format_version": 1, "model": RunsCode()}, p)),
        ("raw.pt", lambda p: p.write_bytes(pickle.dumps(RunsCode(), protocol=2))),
    ]:
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError, match="refused to load checkpoint .* could run code"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError, match="refused"):
            make_trainer(tmp_path / "r").resume(path)
    assert not marker.exists()


def test_truncated_or_missing_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "t.pt"
    save_checkpoint({"x": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="t.pt: the file is truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not an rnnkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
