"""The DeepAR model (Salinas et al. 2020): an autoregressive LSTM with a likelihood head.

At step t the input is ``[z_{t-l} for l in lags] ++ calendar(t) ++ covariates(t) ++
embedding(series)`` (``covariates``: none unless the config names some), with
``z = (value - loc) / scale`` scaled per window (``features.window_scale``); the LSTM's
output gives the parameters of p(z_t). Training maximizes the likelihood of every step of a
context + horizon window with the true values fed back (teacher forcing, Sec. 3.1).
Forecasting reads the context the same way, then draws z_t, feeds the draw back as the next
step's lag, and repeats (ancestral sampling, Sec. 3.2): each path is one joint sample of the
future, and quantiles over paths give the intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.data.errors import DataError
from rnnkit.forecasting.combination import combined_paths, statistical_paths
from rnnkit.forecasting.covariates import Covariates, covariate_width, step_inputs, window_inputs
from rnnkit.forecasting.features import lagged, window_scale
from rnnkit.forecasting.forecast import Forecast
from rnnkit.forecasting.frequency import FREQUENCIES, check_dates, future_dates
from rnnkit.forecasting.theta import seasonal_adjustment
from rnnkit.forecasting.windows import (
    STATISTICAL_MIN_ROWS,
    ForecastConfig,
    Windows,
    statistical_only,
)
from rnnkit.heads import GaussianHead
from rnnkit.stats import t_quantile
from rnnkit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["StudentTHead", "DeepAR", "DeepAREnsemble", "build_model", "Forecast",
           "Forecaster"]

OBJECTIVES = ("teacher_forcing", "open_loop")


class StudentTHead(nn.Module):
    """Student-t over one value: ``params [..., 3] = (mu, raw_scale, raw_df)`` with
    ``sigma = softplus(raw_scale) + 1e-4`` and ``df = 2 + softplus(raw_df)`` (df > 2 keeps
    the variance finite). ``loss(params, y [..., 1]) -> [...]`` is the NLL in nats."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 3)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h)

    def dist(self, params: Tensor) -> torch.distributions.StudentT:
        mu, raw_scale, raw_df = params.unbind(-1)
        return torch.distributions.StudentT(2 + F.softplus(raw_df), mu,
                                            F.softplus(raw_scale) + 1e-4)

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        return -self.dist(params).log_prob(targets.squeeze(-1))

    def sample(self, params: Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """A draw ``[..., 1]`` with the scale times ``temperature`` (torch's global
        generator: StudentT takes none)."""
        del generator
        d = self.dist(params)
        draw = torch.distributions.StudentT(d.df, d.loc, d.scale * temperature).sample()
        return draw.unsqueeze(-1)


class DeepAR(nn.Module):
    """Inputs -> ``rnnkit.LSTM`` -> Gaussian (``rnnkit.heads.GaussianHead``) or Student-t head,
    plus (``config.skip``) a linear autoregression on the lags (and the covariate inputs)
    added to the location.

    Shapes: ``values [B, max_lag + T]`` raw, ``calendar [B, T, K]`` (calendar features then
    covariate inputs), ``series [B]`` int64.
    """

    def __init__(self, config: ForecastConfig, num_series: int = 1) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.embedding = (nn.Embedding(num_series, cfg.embedding_dim)
                          if cfg.embedding_dim and num_series > 1 else None)
        inputs = len(cfg.lags) + 2 * len(cfg.calendar) + covariate_width(cfg)
        inputs += cfg.embedding_dim if self.embedding is not None else 0
        self.rnn = rnnkit.LSTM(inputs, cfg.hidden_size, cfg.num_layers, batch_first=True,
                               dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        # LSTNet's highway (Lai et al. 2018): a linear autoregression on the lags added to the
        # location, starting as the naive forecast (weight 1 on lag 1), so the network only
        # has to learn what the lags do not say; small series then start from a sane model
        # (fit.init_skip moves it to the least-squares AR fit before training)
        self.skip = None
        if cfg.skip not in ("", "naive", "least_squares"):
            raise ValueError(f"skip must be '', 'naive' or 'least_squares', got {cfg.skip!r}")
        # the covariates enter the linear part too (a regression with AR terms, fpp's
        # dynamic regression): their effect is there from the first step (init_skip)
        cov_start = len(cfg.lags) + 2 * len(cfg.calendar)
        self.skip_columns = [*range(len(cfg.lags)),
                             *range(cov_start, cov_start + covariate_width(cfg))]
        if cfg.skip:
            self.skip = nn.Linear(len(self.skip_columns), 1)
            with torch.no_grad():
                self.skip.weight.zero_()
                self.skip.bias.zero_()
                self.skip.weight[0, list(cfg.lags).index(1)] = 1.0
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
        # multiplies the head's scale when sampling; fit.calibrate sets it on validation rows
        self.register_buffer("temperature", torch.tensor(1.0))
        if cfg.likelihood == "gaussian":
            self.head = GaussianHead(cfg.hidden_size, 1)
        elif cfg.likelihood == "student_t":
            self.head = StudentTHead(cfg.hidden_size)
        else:
            raise ValueError(f"likelihood must be 'gaussian' or 'student_t', "
                             f"got {cfg.likelihood!r}")

    def inputs(self, z: Tensor, calendar: Tensor, series: Tensor | None) -> Tensor:
        """Scaled values ``z [B, max_lag + T]`` -> RNN inputs ``[B, T, I]`` for steps
        ``max_lag .. max_lag + T - 1``."""
        parts = [lagged(z, self.config.lags, self.config.max_lag), calendar]
        if self.embedding is not None:
            idx = series if series is not None else torch.zeros(len(z), dtype=torch.long)
            parts.append(self.embedding(idx).unsqueeze(1).expand(-1, calendar.shape[1], -1))
        return torch.cat(parts, dim=-1)

    def params(self, x: Tensor, state=None) -> tuple[Tensor, object]:
        """RNN inputs ``[B, T, I]`` -> distribution parameters ``[B, T, P]`` (location first)
        and the RNN state."""
        out, state = self.rnn(x, state)
        params = self.head(out)
        if self.skip is not None:
            shift = self.skip(self.skip_inputs(x))
            params = torch.cat([params[..., :1] + shift, params[..., 1:]], dim=-1)
        return params, state

    def skip_inputs(self, x: Tensor) -> Tensor:
        """The columns of the RNN inputs ``x [..., I]`` the linear part reads: the lags, then
        the covariate inputs."""
        if len(self.skip_columns) == len(self.config.lags):
            return x[..., : len(self.config.lags)]
        return x[..., self.skip_columns]

    def scale(self, values: Tensor, context: int) -> tuple[Tensor, Tensor]:
        """(loc, scale) ``[B, 1]`` from the ``context`` values after the lag prefix."""
        lag = self.config.max_lag
        return window_scale(values[:, lag: lag + context], self.config.scaling)

    def nll(self, w: Windows) -> Tensor:
        """Mean NLL (nats per step, scaled units) of the windows' C + H scored steps."""
        loc, scale = self.scale(w.values, self.config.context_length)
        z = (w.values - loc) / scale
        if self.config.objective == "open_loop":
            params = self.open_loop_params(z, w)
        else:
            params, _ = self.params(self.inputs(z, w.calendar, w.series))
        targets = z[:, self.config.max_lag:].unsqueeze(-1)
        nll = self.head.loss(params, targets)
        if self.config.loss_on == "horizon":
            return nll[:, self.config.context_length:].mean()
        return nll.mean()

    def open_loop_params(self, z: Tensor, w: Windows) -> Tensor:
        """Parameters ``[B, C + H, P]`` of the window's steps read open loop: the context
        teacher-forced, then each horizon step fed its own predicted locations as lags (the
        forecast's mean path, differentiable), so no true horizon value reaches an input.
        The multi-step objective of issue 16: training sees the errors that compound in a
        forecast (Bengio et al. 2015 on the train/test mismatch of teacher forcing)."""
        cfg, lag = self.config, self.config.max_lag
        c = cfg.context_length
        head, state = self.params(self.inputs(z[:, : lag + c], w.calendar[:, :c], w.series))
        fed = [z[:, : lag + c]]  # the known values, then one predicted column per step
        emb = self.embedding(w.series) if self.embedding is not None else None
        steps = [head]
        for h in range(cfg.horizon):
            known = torch.cat(fed, 1)
            x = self._step_input(known, known.shape[1], w.calendar[:, c + h], emb)
            params, state = self.params(x, state)
            steps.append(params)
            fed.append(params[:, :, 0])
        return torch.cat(steps, 1)

    def _step_input(self, values: Tensor, pos: int, calendar: Tensor, emb: Tensor | None
                    ) -> Tensor:
        """The RNN input ``[B, 1, I]`` of the step at column ``pos`` of ``values`` (its lags
        read the columns before it), with that step's ``calendar [B, K]`` and ``emb``."""
        parts = [values[:, [pos - lag for lag in self.config.lags]], calendar]
        return torch.cat(parts + ([emb] if emb is not None else []), -1).unsqueeze(1)

    def context_spread(self, z: Tensor, params: Tensor) -> Tensor:
        """``[B]``: the factor by which the one-step 80% intervals of the context's own
        steps must widen to hold 80% of them: the 0.8-quantile over the steps of
        ``|z_t - mu_t| / (sigma_t q_0.9)``, with ``z [B, max_lag + T]`` the scaled context,
        ``params [B, T, P]`` its teacher-forced one-step predictions and ``q_0.9`` the head's
        standard 0.9-quantile (Student-t: ``t_quantile``)."""
        target = z[:, self.config.max_lag:]
        if isinstance(self.head, StudentTHead):
            d = self.head.dist(params)
            mu, sigma, q = d.loc, d.scale, t_quantile(0.9, d.df)
        else:
            mu, log_var = self.head.split(params)
            mu, sigma = mu[..., 0], torch.exp(0.5 * log_var[..., 0])
            q = torch.special.ndtri(torch.tensor(0.9))
        return torch.quantile((target - mu).abs() / (sigma * q), 0.8, dim=1)

    @torch.no_grad()
    def sample_paths(self, values: Tensor, calendar: Tensor, series: Tensor | None,
                     horizon: int, num_samples: int, context_spread: bool = False) -> Tensor:
        """Ancestral sample paths ``[B, S, horizon]`` in data units.

        ``values [B, max_lag + T]`` are the context (T >= 1 steps read teacher-forced, the
        scale taken from them), ``calendar [B, T + horizon, K]`` covers the context steps and
        the future ones. Draws scale the predicted spread by ``temperature``, or with
        ``context_spread`` by ``max(temperature, self.context_spread(...))`` of their row
        (the latter at most ``max(config.temperatures)``): a forecast is never surer of the
        next steps than the model was of its own context.
        """
        lag = self.config.max_lag
        b, t = values.shape[0], values.shape[1] - lag
        loc, scale = self.scale(values, t)
        z = (values - loc) / scale
        params, state = self.params(self.inputs(z, calendar[:, :t], series))
        temperature = self.temperature.expand(b)
        if context_spread:
            # at most the widest temperature calibration may choose: a context the model
            # fits hundreds of times worse than it expects (an overfit model) says more
            # about the model than about the next steps
            floor = self.context_spread(z, params).clamp(max=max(self.config.temperatures))
            temperature = torch.maximum(temperature, floor)
        temperature = temperature.repeat_interleave(num_samples).unsqueeze(-1)
        # one row per (series, path): repeat along the batch axis of the [L, B, H] state
        state = tuple(s.repeat_interleave(num_samples, dim=1) for s in state)
        buf = torch.cat([z, z.new_zeros(b, horizon)], 1).repeat_interleave(num_samples, 0)
        cal = calendar[:, t:].repeat_interleave(num_samples, 0)
        emb = None
        if self.embedding is not None:
            idx = series if series is not None else torch.zeros(b, dtype=torch.long)
            emb = self.embedding(idx).repeat_interleave(num_samples, 0)
        for h in range(horizon):
            pos = lag + t + h
            params, state = self.params(self._step_input(buf, pos, cal[:, h], emb), state)
            # both heads are location-scale families (location first): widening a unit
            # draw's deviation from the location scales the spread
            mu = params[:, 0, :1]
            draw = mu + temperature * (self.head.sample(params[:, 0]) - mu)
            buf[:, pos] = draw.squeeze(-1)
        paths = buf[:, lag + t:].view(b, num_samples, horizon)
        return paths * scale.unsqueeze(-1) + loc.unsqueeze(-1)


class DeepAREnsemble(nn.Module):
    """K DeepAR models of one config, trained from different seeds (a deep ensemble,
    Lakshminarayanan et al. 2017). A forecast pools their sample paths, each member drawing
    about S / K of them, so the intervals carry the members' disagreement (what one model
    fitted to a few hundred rows cannot know it does not know) besides each one's noise.
    ``temperature`` is the ensemble's and applies to every member."""

    def __init__(self, members: list[DeepAR]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.register_buffer("temperature", torch.tensor(1.0))

    @property
    def embedding(self) -> nn.Embedding | None:
        return self.members[0].embedding

    @torch.no_grad()
    def sample_paths(self, values: Tensor, calendar: Tensor, series: Tensor | None,
                     horizon: int, num_samples: int, context_spread: bool = False) -> Tensor:
        """``[B, S, horizon]``: member k's paths fill its share of the S, as in
        ``DeepAR.sample_paths`` (``context_spread`` from each member's own residuals)."""
        k = len(self.members)
        paths = []
        for i, member in enumerate(self.members):
            share = num_samples // k + (i < num_samples % k)
            if share:
                member.temperature.copy_(self.temperature)
                paths.append(member.sample_paths(values, calendar, series, horizon, share,
                                                 context_spread))
        return torch.cat(paths, 1)


def build_model(config: ForecastConfig, num_series: int = 1) -> DeepAR | DeepAREnsemble:
    """The model ``config`` describes: a DeepAR, or ``config.ensemble`` of them."""
    if config.ensemble == 1:
        return DeepAR(config, num_series)
    return DeepAREnsemble([DeepAR(config, num_series) for _ in range(config.ensemble)])


class Forecaster:
    """A trained DeepAR model with what it needs to forecast new data: its config, its
    frequency and the names of the series it was trained on (their embedding rows); and the
    names of the series too short to train it on (``windows.drop_short``), which the
    statistical forecasts forecast alone. ``model`` None: every series is one of those
    (``config`` then gives the frequency, season and shares)."""

    def __init__(self, model: DeepAR | DeepAREnsemble | None, series_names: list[str],
                 config: ForecastConfig | None = None,
                 statistical_series: list[str] | tuple[str, ...] = ()) -> None:
        if model is None and config is None:
            raise ValueError("Forecaster: give a model or, without one, a config")
        self.model = model
        self.config: ForecastConfig = model.config if model is not None else config
        self.freq = FREQUENCIES[self.config.freq]
        self.series_names = list(series_names)
        self.statistical_series = list(statistical_series)

    @property
    def forecast_series(self) -> list[str]:
        """The names of every series this forecaster forecasts: the network's, then those
        too short for it (``statistical_series``)."""
        return self.series_names + self.statistical_series

    def forecast(self, context_values: np.ndarray, context_dates: np.ndarray, horizon: int,
                 num_samples: int = 200, series: str | None = None,
                 levels: tuple[float, ...] = (0.1, 0.5, 0.9), seed: int = 0,
                 covariates: Covariates | None = None) -> Forecast:
        """Forecast ``horizon`` steps after ``context_values [T]`` at ``context_dates [T]``.

        Only the context is read, and of it only the last ``max_lag + context_length`` rows.
        It must hold more rows than the largest lag. ``series`` names the training series
        it continues (its embedding; default the first) and is named in errors. A horizon
        beyond the trained one (``config.horizon``) is forecast with a warning.

        ``covariates``: those the model was trained with (``config.future_covariates``...),
        their rows aligned with the context's; future-known ones go on for the ``horizon``
        rows after it (a DataError names the dates without a value), past-only ones are
        read for the context rows only.

        With ``config.combine`` set, the paths are a mixture of the network's and those of
        the statistical forecast ``config.statistical`` and the seasonal-naive one of the
        whole context given, at the shares ``config.combine_weights``, the statistical
        forecast's interval widened by ``config.theta_spread`` about the mixture's median
        (``forecasting.combination.combined_paths``).

        A series of ``statistical_series`` (or every one, without a model) is forecast by
        the statistical forecast and the seasonal-naive one alone, at the shares
        ``config.statistical_only_weights`` (covariates unread); its context needs
        ``windows.statistical_only``'s rows (as many as steps, and 8).
        """
        cfg = self.config
        values = np.asarray(context_values, dtype=np.float64)
        if not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if values.ndim != 1 or len(values) != len(context_dates):
            raise ValueError(f"context_values must be [T] with one date each, got "
                             f"{values.shape} values and {len(context_dates)} dates")
        what = f"series {series!r}" if series is not None else "the context"
        if not np.isfinite(values).all():
            raise DataError(f"{what} has missing or infinite values at rows "
                            f"{np.flatnonzero(~np.isfinite(values))[:5].tolist()}")
        alone = self.model is None or (series is not None and series in self.statistical_series)
        if alone and not statistical_only(len(values), horizon):
            raise DataError(f"{what} has {len(values)} rows; the statistical forecasts alone "
                            f"forecast {horizon} steps from at least "
                            f"{max(horizon, STATISTICAL_MIN_ROWS)}")
        if not alone and len(values) <= cfg.max_lag:
            raise DataError(f"{what} has {len(values)} rows; this model needs more than "
                            f"its largest lag, {cfg.max_lag} (at least {cfg.max_lag + 1})")
        if not alone and horizon > cfg.horizon:
            warnings.warn(f"a forecast of {horizon} steps from a model trained on horizons of "
                          f"{cfg.horizon}: steps {cfg.horizon + 1} on are extrapolated (no "
                          f"training window scored them, no validation calibrated them)",
                          stacklevel=2)
        dates = np.asarray(context_dates).astype("datetime64[m]")
        check_dates(dates)
        future = future_dates(dates[-1], self.freq, horizon)
        if alone:
            samples = statistical_paths(values, horizon, cfg.season,
                                        cfg.statistical_only_weights, cfg.theta_spread or 1.0,
                                        num_samples, seed, cfg.statistical)
        else:
            samples = self._network_paths(values, dates, future, num_samples, series, seed,
                                          covariates)
        return Forecast(future, samples, samples.mean(0),
                        np.quantile(samples, levels, axis=0), tuple(levels))

    def _network_paths(self, values: np.ndarray, dates: np.ndarray, future: np.ndarray,
                       num_samples: int, series: str | None, seed: int,
                       covariates: Covariates | None) -> np.ndarray:
        """``[S, H]``: the network's sample paths after ``values [T]`` at ``dates [T]`` for
        the ``future [H]`` dates, mixed as ``config.combine`` says (see ``forecast``)."""
        cfg = self.config
        keep = min(len(values), cfg.max_lag + cfg.context_length)
        first = len(values) - keep
        scaled = values / cfg.unit
        if cfg.deseasonalize:  # measured on the whole context given
            factor, offset = seasonal_adjustment(scaled, cfg.season, len(values) + len(future))
            scaled = (scaled - offset[: len(values)]) / factor[: len(values)]
        context = scaled[-keep:]
        cal = self._features(dates[-keep:], future, covariates, first,
                             series or self.series_names[0])
        idx = None
        if self.model.embedding is not None:
            if series is not None and series not in self.series_names:
                raise DataError(f"unknown series {series!r}; trained on {self.series_names}")
            idx = torch.tensor([self.series_names.index(series) if series else 0])
        self.model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            paths = self.model.sample_paths(
                torch.tensor(context, dtype=torch.float32).unsqueeze(0),
                cal, idx, len(future), num_samples,
                context_spread=cfg.context_spread)[0]
        samples = paths.double().numpy()
        if cfg.deseasonalize:
            samples = samples * factor[len(values):] + offset[len(values):]
        samples = samples * cfg.unit
        if cfg.combine:
            # the whole context given, not only the rows the network reads
            samples = combined_paths(samples, values, len(future), cfg.season,
                                     cfg.combine_weights, cfg.theta_spread or 1.0, seed,
                                     cfg.statistical)
        return samples

    def _features(self, dates: np.ndarray, future: np.ndarray, covariates: Covariates | None,
                  first: int, series: str) -> Tensor:
        """``[1, T + H, K]``: the calendar features and covariate inputs of the context's
        steps after the lag prefix (``dates [max_lag + T]``, the context's rows from row
        ``first`` of the given ones) and of the ``future [H]`` dates."""
        cfg = self.config
        cov = covariates.rows(first) if covariates is not None else None
        cal = step_inputs(cfg, np.concatenate([dates, future]), cov, len(dates), series)
        cal = torch.from_numpy(cal[cfg.max_lag:]).unsqueeze(0)
        return window_inputs(cal, cfg, len(dates) - cfg.max_lag)

    def save(self, path: str | Path) -> None:
        """Write atomically (``save_checkpoint``): a crash leaves the old file or the new one."""
        save_checkpoint({"config": asdict(self.config), "series_names": self.series_names,
                         "num_series": len(self.series_names),
                         "statistical_series": self.statistical_series,
                         "model": None if self.model is None else self.model.state_dict()},
                        path)

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Read a saved forecaster; a missing, truncated or foreign file is a CheckpointError
        naming it. Files from before ``save`` wrote a format_version are read too."""
        saved = load_checkpoint(path, versioned=False)
        if "config" not in saved or "model" not in saved:
            raise CheckpointError(f"{path} is not a forecaster saved by rnnkit forecast")
        cfg = saved["config"]
        if "combine" not in cfg:  # saved before the combination with Theta: the network alone
            cfg["combine"] = ""
        if "combine_weight" in cfg:  # saved with a share of Theta's only
            w = cfg.pop("combine_weight")
            cfg["combine_weights"] = (w, 1.0 - w, 0.0)
        for key in ("lags", "calendar", "temperatures", "combine_weights", "future_covariates",
                    "past_covariates", "static_covariates", "statistical_only_weights"):
            if key in cfg:  # covariates: absent from files saved before them
                cfg[key] = tuple(cfg[key])
        config = ForecastConfig(**cfg)
        model = None
        if saved["model"] is not None:  # None: every series too short for the network
            model = build_model(config, saved["num_series"])
            model.load_state_dict(saved["model"])
        return cls(model, saved["series_names"], config, saved.get("statistical_series", ()))


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

