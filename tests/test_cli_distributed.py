"""`torchrun --nproc_per_node 2 -m rnnkit train`: one run directory, made and written by rank
0, and a checkpoint both processes resume from."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "rnnkit", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is missing")
def test_two_processes_train_in_one_run_directory_and_resume(tmp_path):
    (tmp_path / "t.txt").write_text("the cat sat on the mat. a dog ate the hat!\n" * 60)
    tiny = ["--hidden-size", "16", "--embed-dim", "8", "--batch-size", "4", "--chunk-length",
            "16", "--eval-every", "2", "--sample-length", "5", "--no-progress", "--threads", "1"]
    first = torchrun(["train", "t.txt", *tiny, "--max-steps", "4"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["t"]  # no race for the name
    run = tmp_path / "runs" / "t"
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(ckpt["ranks"]) == 2
    assert first.stderr.count("data: t.txt") == 1  # rank 0 alone reports
    assert "every rank reads the same rows" not in first.stderr  # validation: read by all

    again = torchrun(["train", "--resume", "t", "--max-steps", "6"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 6
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"split"' not in line]
    assert len(steps) == 6  # one record per step: rank 0 alone writes
