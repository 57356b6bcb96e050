"""Initializations of recurrent weights and gate biases, for rnnkit and torch.nn modules.

Every function takes a module whose parameters follow torch.nn's names (``weight_hh_l*``,
``bias_ih_l*``, ``bias_hh_l*``; gates stacked along dim 0: LSTM i, f, g, o; GRU r, z, n),
so they apply alike to :class:`rnnkit.LSTM` / :class:`rnnkit.GRU` and to
:class:`torch.nn.LSTM` / :class:`torch.nn.GRU`. The constructors call them through
``init=`` and ``chrono_init=``, before the gate-bias arguments (``forget_bias``...).

- ``orthogonal``: each gate's [H, H] block of W_hh is a random orthogonal matrix (Saxe et
  al. 2014), so W_h^T W_h = I per block.
- ``identity``: each gate's block of W_hh is ``scale * I`` (Le et al. 2015's IRNN init).
- chrono (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?", eq. 16): for
  dependencies up to ``T_max`` steps, the LSTM forget bias is ``b_f = log(u)``,
  ``u ~ U(1, T_max - 1)`` per unit, and the input bias ``b_i = -b_f``. In torch.nn.GRU's
  convention ``h' = (1 - z) * n + z * h`` the update gate z is the *keep* gate (the LSTM's
  f, with 1 - z its i), so the GRU gets ``b_z = log(u)``; the reset gate is left alone.
  Each gate's total bias (``bias_ih + bias_hh``) is set: ``bias_ih`` holds it, ``bias_hh``
  is 0 there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SCHEMES", "orthogonal_", "identity_", "chrono_", "apply_scheme", "check_chrono"]

SCHEMES = ("default", "orthogonal", "identity")


def _num_gates(module: nn.Module) -> int:
    return module.weight_hh_l0.shape[0] // module.hidden_size


def _layers(module: nn.Module) -> range:
    return range(module.num_layers)


def _blocks(weight_hh: Tensor, hidden_size: int) -> list[Tensor]:
    """The gate blocks of W_hh [G*H, H] as [H, H] views."""
    return list(weight_hh.split(hidden_size, dim=0))


@torch.no_grad()
def orthogonal_(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Each gate's [H, H] block of every ``weight_hh_l*`` becomes ``gain`` times a random
    orthogonal matrix (Saxe et al. 2014). Returns the module."""
    for layer in _layers(module):
        for block in _blocks(getattr(module, f"weight_hh_l{layer}"), module.hidden_size):
            nn.init.orthogonal_(block, gain)
    return module


@torch.no_grad()
def identity_(module: nn.Module, scale: float = 1.0) -> nn.Module:
    """Each gate's [H, H] block of every ``weight_hh_l*`` becomes ``scale * I`` (Le et al.
    2015). Returns the module."""
    for layer in _layers(module):
        for block in _blocks(getattr(module, f"weight_hh_l{layer}"), module.hidden_size):
            block.copy_(scale * torch.eye(module.hidden_size))
    return module


def apply_scheme(module: nn.Module, scheme: str) -> nn.Module:
    """Apply ``init=scheme``: "default" (torch.nn's uniform init, left as is),
    "orthogonal" or "identity" (scale 1) to W_hh."""
    if scheme == "orthogonal":
        orthogonal_(module)
    elif scheme == "identity":
        identity_(module)
    elif scheme != "default":
        raise ValueError(f"init must be one of {', '.join(map(repr, SCHEMES))}, got {scheme!r}")
    return module


def check_chrono(t_max: float | None) -> float | None:
    """``t_max`` if it is None or a number > 2 (U(1, T_max - 1) must not be empty)."""
    if t_max is None:
        return None
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not t_max > 2:
        raise ValueError(f"chrono_init must be a number of steps T_max > 2, got {t_max!r}")
    return t_max


@torch.no_grad()
def chrono_(module: nn.Module, t_max: float, generator: torch.Generator | None = None
            ) -> nn.Module:
    """Chrono initialization (Tallec & Ollivier 2018) of every layer's gate biases.

    LSTM: ``b_f = log(u)``, ``b_i = -b_f``, ``u ~ U(1, T_max - 1)`` per unit; GRU (z keeps
    the state): ``b_z = log(u)``. So ``b_f`` (``b_z``) lies in ``[0, log(T_max - 1)]``.
    Returns the module.
    """
    check_chrono(t_max)
    if not module.bias:
        raise ValueError(f"{type(module).__name__}: chrono_init={t_max} needs bias=True")
    H, G = module.hidden_size, _num_gates(module)
    keep_gate, input_gate = (1, 0) if G == 4 else (1, None)
    for layer in _layers(module):
        b_ih, b_hh = getattr(module, f"bias_ih_l{layer}"), getattr(module, f"bias_hh_l{layer}")
        u = torch.empty(H, dtype=torch.float64).uniform_(1.0, t_max - 1.0, generator=generator)
        b_keep = u.log().to(b_ih.dtype)
        for gate, value in [(keep_gate, b_keep), (input_gate, -b_keep)]:
            if gate is None:
                continue
            b_ih[gate * H : (gate + 1) * H] = value
            b_hh[gate * H : (gate + 1) * H] = 0.0
    return module


def chrono_range(t_max: float) -> tuple[float, float]:
    """The interval chrono's keep-gate biases lie in: [log 1, log(T_max - 1)]."""
    return 0.0, math.log(t_max - 1.0)
