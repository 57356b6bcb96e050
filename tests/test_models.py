import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.heads import CategoricalHead, GaussianHead
from rnnkit.models import SequenceModel
from rnnkit.normalization import FeatureNormalizer


def _forecaster(features=2, hidden=8):
    torch.manual_seed(0)
    return SequenceModel(nn.Identity(), nn.LSTM(features, hidden, batch_first=True),
                         GaussianHead(hidden, features), FeatureNormalizer(features))


def test_step_matches_the_sequence_call():
    model = _forecaster()
    x = torch.randn(3, 6, 2)
    params, state = model(x)
    s, steps = None, []
    for t in range(6):
        p, s = model.step(x[:, t], s)
        steps.append(p)
    torch.testing.assert_close(torch.stack(steps, 1), params)
    torch.testing.assert_close(s[0], state[0])


def test_return_hidden_gives_the_rnn_outputs():
    model = _forecaster()
    x = torch.randn(3, 4, 2)
    params, _, hidden = model(x, return_hidden=True)
    out, _ = model.rnn(x)
    torch.testing.assert_close(hidden, out)
    torch.testing.assert_close(params, model.head(out))


def test_embedding_accepts_soft_weights():
    torch.manual_seed(0)
    model = SequenceModel(nn.Embedding(5, 4), nn.GRU(4, 6, batch_first=True),
                          CategoricalHead(6, 5))
    tokens = torch.randint(0, 5, (2, 3))
    one_hot = nn.functional.one_hot(tokens, 5).float()
    torch.testing.assert_close(model(one_hot)[0], model(tokens)[0])


def test_reset_starts_rows_fresh_for_plain_torch_rnns():
    model = _forecaster()
    x = torch.randn(2, 5, 2)
    _, carried = model(torch.randn(2, 3, 2))
    reset = torch.zeros(2, 5, dtype=torch.bool)
    reset[0, 0] = True
    params, _ = model(x, carried, reset=reset)
    fresh, _ = model(x[:1])
    kept, _ = model(x[1:], tuple(s[:, 1:] for s in carried))
    torch.testing.assert_close(params[:1], fresh)
    torch.testing.assert_close(params[1:], kept)
    reset[1, 2] = True  # inside the chunk: run in segments
    params, _ = model(x, carried, reset=reset)
    kept, _ = model(x[1:, :2], tuple(s[:, 1:] for s in carried))
    torch.testing.assert_close(params[1:, :2], kept)
    torch.testing.assert_close(params[1:, 2:], model(x[1:, 2:])[0])


def test_model_works_in_data_units():
    train = np.random.default_rng(0).normal(50.0, 10.0, size=(200, 2))
    model = _forecaster()
    model.normalizer.fit(train)
    x = torch.tensor(train[None, :10], dtype=torch.float32)
    params, _ = model(x)
    mu_norm, _ = model.head.split(params)
    torch.testing.assert_close(model.predict(params), mu_norm * model.normalizer.std
                               + model.normalizer.mean)
    y = x + 1.0
    z = (y - torch.tensor(train.mean(0), dtype=torch.float32)) / torch.tensor(
        train.std(0, ddof=1), dtype=torch.float32)
    torch.testing.assert_close(model.loss(params, y), model.head.loss(params, z))
    assert model.feedback(params).shape == (1, 10, 2)


def test_normalizer_statistics_come_from_the_training_split_only():
    series = np.concatenate([np.full((80, 1), 1.0), np.full((20, 1), 100.0)])
    series[::2] += 1.0  # give the training split a spread
    train, held_out = series[:80], series[80:]
    model = SequenceModel.forecaster(1, hidden_size=4, train_data=train)
    torch.testing.assert_close(model.normalizer.mean, torch.tensor([train.mean()],
                                                                   dtype=torch.float32))
    torch.testing.assert_close(model.normalizer.std, torch.tensor([train.std(ddof=1)],
                                                                  dtype=torch.float32))
    assert model.normalizer.mean.item() < 2.0 < held_out.mean()
    state = model.state_dict()
    assert {"normalizer.mean", "normalizer.std", "normalizer.fitted"} <= set(state)
    fresh = SequenceModel.forecaster(1, hidden_size=4)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.normalizer.mean, model.normalizer.mean)


def test_constructors_build_working_models():
    lm = SequenceModel.char_lm(7, hidden_size=8, num_layers=2)
    tokens = torch.randint(0, 7, (2, 5))
    logits, _ = lm(tokens)
    assert logits.shape == (2, 5, 7)
    assert lm.loss(logits, tokens).shape == (2, 5)
    fc = SequenceModel.forecaster(3, hidden_size=8, cell="gru")
    params, _ = fc(torch.randn(2, 5, 3))
    assert params.shape == (2, 5, 6)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        SequenceModel.char_lm(5, hidden_size=4, cell="rnn")
    with pytest.raises(ValueError, match="expected 2 features"):
        FeatureNormalizer(2).fit(np.zeros((10, 3)))


def test_constructors_build_rnnkit_modules_with_tricks():
    import rnnkit

    lm = SequenceModel.char_lm(7, hidden_size=8, num_layers=2, layer_norm=True, zoneout_cell=0.1)
    assert isinstance(lm.rnn, rnnkit.LSTM) and lm.rnn.batch_first
    fc = SequenceModel.forecaster(2, hidden_size=8, cell="gru", learned_initial_state=True)
    assert isinstance(fc.rnn, rnnkit.GRU)
    x = torch.randn(2, 5, 2)
    reset = torch.zeros(2, 5, dtype=torch.bool)
    reset[0, 3] = True
    params, _ = fc(x, fc(x)[1], reset=reset)  # reset handled by rnnkit.GRU itself
    torch.testing.assert_close(params[0, 3:], fc(x[:1, 3:])[0][0])
