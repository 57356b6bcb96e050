import math

import pytest
import torch
from torch.distributions import Normal

from rnnkit.heads import CategoricalHead, GaussianHead


def test_gaussian_nll_equals_the_formula():
    torch.manual_seed(0)
    head = GaussianHead(8, 3)
    params = head(torch.randn(2, 5, 8))
    y = torch.randn(2, 5, 3)
    mu, log_var = params.chunk(2, dim=-1)
    by_hand = 0.5 * (math.log(2 * math.pi) + log_var + (y - mu) ** 2 / log_var.exp()).sum(-1)
    reference = -Normal(mu, (0.5 * log_var).exp()).log_prob(y).sum(-1)
    loss = head.loss(params, y)
    assert loss.shape == (2, 5)
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, reference)


def test_gaussian_mse_mode_is_sum_of_squared_errors():
    head = GaussianHead(4, 2, mse=True)
    params = head(torch.randn(3, 4))
    y = torch.randn(3, 2)
    assert params.shape == (3, 2)
    torch.testing.assert_close(head.loss(params, y), ((y - params) ** 2).sum(-1))
    torch.testing.assert_close(head.sample(params), params)  # no variance: the mean


def test_gaussian_sample_is_reparameterized():
    head = GaussianHead(4, 2)
    params = head(torch.randn(3, 4)).detach().requires_grad_()
    draw = head.feedback(params, mode="sample", generator=torch.Generator().manual_seed(0))
    draw.sum().backward()
    assert params.grad[:, :2].abs().sum() > 0 and params.grad[:, 2:].abs().sum() > 0
    mu = head.mean(params)
    assert not torch.allclose(draw, mu)
    torch.testing.assert_close(head.sample(params, temperature=0.0), mu)


def test_gaussian_sample_statistics():
    head = GaussianHead(1, 1)
    params = torch.tensor([[2.0, math.log(0.25)]]).expand(20000, 2)
    draws = head.sample(params, generator=torch.Generator().manual_seed(1))
    assert abs(draws.mean().item() - 2.0) < 0.02
    assert abs(draws.std().item() - 0.5) < 0.02


def test_categorical_loss_and_feedback_modes():
    torch.manual_seed(0)
    head = CategoricalHead(6, 5)
    logits = head(torch.randn(2, 3, 6))
    targets = torch.randint(0, 5, (2, 3))
    expected = -logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(head.loss(logits, targets), expected)
    g = torch.Generator().manual_seed(0)
    assert head.feedback(logits, generator=g).dtype == torch.int64
    torch.testing.assert_close(head.feedback(logits, mode="expected"), logits.softmax(-1))
    soft = head.feedback(logits, mode="gumbel", generator=g, tau=0.5)
    torch.testing.assert_close(soft.sum(-1), torch.ones(2, 3))
    hard = head.feedback(logits, mode="gumbel_hard", generator=g)
    one_hot = torch.nn.functional.one_hot(hard.argmax(-1), 5).float()
    torch.testing.assert_close(hard.detach(), one_hot)
    leaf = logits.detach().requires_grad_()
    (head.feedback(leaf, mode="gumbel_hard", generator=g) * torch.randn(5)).sum().backward()
    assert leaf.grad.abs().sum() > 0  # straight-through gradient


def test_categorical_sample_follows_the_probabilities():
    head = CategoricalHead(1, 3)
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(30000, 3)
    draws = head.sample(logits, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).float() / draws.numel()
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.01, rtol=0)
    assert (head.sample(logits[:4], temperature=0.0) == 0).all()


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        CategoricalHead(4, 1)
    with pytest.raises(ValueError, match="num_features must be >= 1, got 0"):
        GaussianHead(4, 0)
    head = GaussianHead(4, 2)
    with pytest.raises(ValueError, match="unknown mode 'median'"):
        head.feedback(torch.zeros(1, 4), mode="median")
    with pytest.raises(ValueError, match="temperature must be >= 0, got -1"):
        head.sample(torch.zeros(1, 4), temperature=-1)
    with pytest.raises(ValueError, match="tau must be > 0, got 0"):
        CategoricalHead(4, 3).feedback(torch.zeros(1, 3), mode="gumbel", tau=0)


def test_a_tiny_temperature_picks_the_argmax_where_denormals_flush_to_zero():
    """GPUs flush float32 denormals to zero, so 1e-45 (a float32 denormal) became 0 and the most
    likely class 0 / 0 = NaN; CPU's flush-denormal mode shows the same."""
    head = CategoricalHead(1, 4)
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9], [3.0, 0.0, 2.99, -5.0]])
    assert torch.set_flush_denormal(True)  # False: this CPU has no such mode
    try:
        assert head.sample(logits, temperature=1e-45).tolist() == [1, 0]
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_categorical_sample_refuses_logits_that_are_not_finite(bad, temperature):
    """A diverged model's logits fail with one clear line, not torch's multinomial message or a
    draw from a distribution that is not one; finite logits in the same batch do not hide it."""
    head = CategoricalHead(1, 3)
    logits = torch.tensor([[0.5, 1.0, -2.0], [0.1, bad, 0.3]])
    if bad == -float("inf"):
        logits[1] = bad  # one -inf alone is a zero probability; a whole row of them is not
    with pytest.raises(ValueError, match="the logits are not finite"):
        head.sample(logits, torch.Generator().manual_seed(0), temperature)
    one = torch.tensor([[0.5, -float("inf"), 0.3]])
    assert head.sample(one, torch.Generator().manual_seed(0), temperature).item() != 1
