"""The hand-written backward of rnnkit.fast_loop: float64 gradcheck and equality with the
plain autograd loop (rnnkit.functional under autograd) for every combination of tricks."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit import fast_loop, kernels, workspace

T, B, H = 5, 3, 4


def _inputs(gates: int, *, ln_hh: bool, ln_cell: bool, mask: bool, keep: bool, reset: bool):
    g = torch.Generator().manual_seed(0)

    def rand(*shape, grad=True):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)

    kw = dict(
        input_gates=rand(T, B, gates * H),
        weight_hh=rand(gates * H, H),
        hh_gain=rand(gates * H) if ln_hh else None,
        hh_bias=rand(gates * H),
        ih_gain=rand(gates * H) if ln_hh else None,  # input_gates before their LN
        ih_bias=rand(gates * H) if ln_hh else None,
        candidate_mask=(torch.rand(B, H, generator=g, dtype=torch.float64) > 0.3).double() * 1.4
        if mask else None,
        keep_h=torch.rand(T, B, H, generator=g, dtype=torch.float64) if keep else None,
    )
    if reset:
        kw["resets"] = {0: torch.tensor([[True], [False], [False]]),
                        3: torch.tensor([[False], [True], [True]])}
        kw["h_init"] = rand(B, H)
    if gates == 4:
        kw["c0"] = rand(B, H)
        kw["cell_gain"] = rand(H) if ln_cell else None
        kw["cell_bias"] = rand(H) if ln_cell else None
        kw["keep_c"] = (torch.rand(T, B, 1, generator=g, dtype=torch.float64) > 0.5).double() \
            if keep else None
        if reset:
            kw["c_init"] = rand(B, H)
    return rand(B, H), kw


def _bundled(layer, input_gates, h0, weight_hh, c0=None, resets=None, h_init=None,
              c_init=None, candidate_mask=None, keep_h=None, keep_c=None, **norms):
    """Call a fast-loop layer with the tensors by name, as _inputs names them."""
    state = (h0,) if c0 is None else (h0, c0)
    return layer(input_gates, *state, weight_hh, fast_loop.LayerNorms(**norms),
                 fast_loop.Masks(candidate_mask, keep_h, keep_c),
                 fast_loop.Resets(resets, h_init, c_init))


def lstm_layer(*args, **kw):
    return _bundled(fast_loop.lstm_layer, *args, **kw)


def gru_layer(*args, **kw):
    return _bundled(fast_loop.gru_layer, *args, **kw)


CASES = list(itertools.product([False, True], repeat=4))  # ln, mask, keep, reset


def _without_kernels(monkeypatch):
    """The path of a machine without a compiler: ``RNNKIT_KERNELS=0`` (read at every call),
    so the fast loop runs as a Python loop over the eager step."""
    monkeypatch.setenv("RNNKIT_KERNELS", "0")


@pytest.fixture(params=["sequence", "eager"])
def loop(request, monkeypatch):
    """Run the fast loops with the compiled sequence ops (the whole loop in C++), then with
    the kernels off (the Python loop over the eager step)."""
    if request.param == "eager":
        _without_kernels(monkeypatch)
    elif not kernels.available():
        pytest.skip("the C++ step kernels did not build on this machine")
    return request.param


@pytest.mark.parametrize("ln,mask,keep,reset", CASES)
def test_lstm_layer_gradcheck(ln, mask, keep, reset, loop):
    h0, kw = _inputs(4, ln_hh=ln, ln_cell=ln, mask=mask, keep=keep, reset=reset)

    def f(*args):
        names = [k for k, v in kw.items() if isinstance(v, torch.Tensor) and v.requires_grad]
        call = dict(kw, **dict(zip(names, args[1:])))
        out, h, c = lstm_layer(h0=args[0], **call)
        return out, h, c

    grads = [h0] + [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    assert torch.autograd.gradcheck(f, grads)


@pytest.mark.parametrize("ln,mask,keep,reset", CASES)
def test_gru_layer_gradcheck(ln, mask, keep, reset, loop):
    h0, kw = _inputs(3, ln_hh=ln, ln_cell=False, mask=mask, keep=keep, reset=reset)

    def f(*args):
        names = [k for k, v in kw.items() if isinstance(v, torch.Tensor) and v.requires_grad]
        return gru_layer(h0=args[0], **dict(kw, **dict(zip(names, args[1:]))))

    grads = [h0] + [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    assert torch.autograd.gradcheck(f, grads)


@pytest.mark.parametrize("gates", [4, 3])
def test_short_and_long_sequence_weight_layouts_agree(gates, loop, monkeypatch):
    """W_hh^T as a transposed view (short sequences, step()) and as a contiguous copy (long
    ones) give the same outputs and gradients."""
    h0, kw = _inputs(gates, ln_hh=True, ln_cell=gates == 4, mask=True, keep=True, reset=True)
    layer = lstm_layer if gates == 4 else gru_layer
    inputs = [h0] + [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    results = []
    for min_steps in (T + 1, 1):  # view, then copy
        monkeypatch.setattr(fast_loop, "TRANSPOSE_MIN_STEPS", min_steps)
        out = layer(h0=h0, **kw)
        results.append([*out, *torch.autograd.grad(sum(o.sum() for o in out), inputs)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_equals_eager_step(cell, dtype, monkeypatch):
    """The compiled sequence op and the Python loop over the eager step give the same outputs
    and gradients, at a size whose rows are not a multiple of the vector width (the kernels'
    tails)."""
    g = torch.Generator().manual_seed(1)
    T_, B_, H_ = 6, 5, 37
    G = (4 if cell == "lstm" else 3) * H_

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    kw = dict(input_gates=rand(T_, B_, G), h0=rand(B_, H_), weight_hh=rand(G, H_) / 6,
              hh_gain=rand(G), hh_bias=rand(G), ih_gain=rand(G), ih_bias=rand(G),
              candidate_mask=(torch.rand(B_, H_, generator=g, dtype=dtype) > 0.3).to(dtype) * 1.4,
              keep_h=torch.rand(T_, B_, H_, generator=g, dtype=dtype),
              resets={2: torch.tensor([[True], [False], [True], [False], [False]])},
              h_init=rand(B_, H_))
    if cell == "lstm":
        kw.update(c0=rand(B_, H_), cell_gain=rand(H_), cell_bias=rand(H_), c_init=rand(B_, H_),
                  keep_c=(torch.rand(T_, B_, 1, generator=g, dtype=dtype) > 0.5).to(dtype))
    layer = lstm_layer if cell == "lstm" else gru_layer

    def run(**changes):
        args = dict(kw, **changes)
        out, h, *c = layer(**args)
        loss = (out * torch.linspace(-1, 1, H_, dtype=dtype)).sum() + h.sum()
        loss = loss + sum((x * x).sum() for x in c)
        leaves = [v for v in args.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        return [out, h, *c, *torch.autograd.grad(loss, leaves)]

    optional = ["hh_gain", "candidate_mask", "keep_h", "ih_gain", "ih_bias", "cell_gain",
                "cell_bias", "keep_c"]
    variants = [{}, {k: None for k in optional if k in kw}]  # every option, then none
    sequence = [run(**v) for v in variants]
    _without_kernels(monkeypatch)
    eager = [run(**v) for v in variants]
    # float32: the kernel's vector tanh and sigmoid and torch's differ by a few ulp, which
    # sums over steps (1.6e-5 at worst on an AVX-512 machine, where torch's run wider vectors)
    tol = 1e-12 if dtype == torch.float64 else 5e-5
    for a, b in zip(sum(sequence, []), sum(eager, [])):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("sizes", [(1, 1, 1), (1, 3, 4), (7, 1, 9)])
def test_sequence_op_at_edge_sizes(cell, sizes):
    """One step, one row, one unit: the sequence op's values and gradients are the eager
    loop's (every row restarts at step 0 and the last row again at the last step)."""
    T_, B_, H_ = sizes
    g = torch.Generator().manual_seed(2)
    G = (4 if cell == "lstm" else 3) * H_

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    reset = {0: torch.ones(B_, 1, dtype=torch.bool)}
    reset[T_ - 1] = torch.arange(B_).eq(B_ - 1).unsqueeze(1) | reset.get(T_ - 1, False)
    kw = dict(input_gates=rand(T_, B_, G), h0=rand(B_, H_), weight_hh=rand(G, H_),
              hh_gain=rand(G), hh_bias=rand(G), keep_h=torch.rand(T_, B_, H_, generator=g,
                                                                   dtype=torch.float64),
              resets=reset, h_init=rand(H_))
    if cell == "lstm":
        kw.update(c0=rand(B_, H_), cell_gain=rand(H_), cell_bias=rand(H_), c_init=rand(1, H_))
    layer = lstm_layer if cell == "lstm" else gru_layer

    def run():
        out, *states = layer(**kw)
        loss = out.sin().sum() + sum((s * s).sum() for s in states)
        leaves = [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        return [out, *states, *torch.autograd.grad(loss, leaves)]

    sequence = run()
    with pytest.MonkeyPatch.context() as mp:
        _without_kernels(mp)
        eager = run()
    for a, b in zip(sequence, eager):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_sequence_op_saves_what_the_eager_loop_saves(mode, monkeypatch):
    """The whole loop in C++ keeps no more for backward than the Python loop over the steps."""
    m = _module(mode, "all")
    x = torch.randn(3, 6, 3)

    def saved_bytes():
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            torch.manual_seed(0)
            m(x)
        return total

    sequence = saved_bytes()
    _without_kernels(monkeypatch)
    assert sequence == saved_bytes()


TRICKS = {
    "layer_norm": dict(layer_norm=True),
    "zoneout": "zoneout",
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "all": "all",
}


def _module(mode, trick, **kw):
    extra = TRICKS[trick]
    if extra == "zoneout":
        extra = dict(zoneout_cell=0.3, zoneout_hidden=0.2) if mode == "LSTM" else dict(zoneout=0.3)
    if extra == "all":
        extra = dict(layer_norm=True, recurrent_dropout=0.2, sum_outputs=True,
                     learned_initial_state=True, input_layers=1)
        extra.update(dict(zoneout_cell=0.2, zoneout_hidden=0.1) if mode == "LSTM"
                     else dict(zoneout=0.2))
    torch.manual_seed(0)
    return getattr(rnnkit, mode)(3, 5, num_layers=2, batch_first=True, **extra, **kw)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", list(TRICKS))
@pytest.mark.parametrize("training", [True, False])
def test_fast_loop_equals_reference_loop(mode, trick, training):
    """Same outputs, states and gradients as rnnkit.functional under autograd."""
    m = _module(mode, trick, dtype=torch.float64).train(training)
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 6])
    reset = torch.zeros(4, 6, dtype=torch.bool)
    reset[2, 3] = True
    results = []
    for fast in (True, False):
        m.fast = fast
        torch.manual_seed(1)  # the same dropout and zoneout masks on both paths
        out, state = m(x, lengths=lengths, reset=reset)
        states = state if isinstance(state, tuple) else (state,)
        loss = out.pow(2).sum() + sum(s.sin().sum() for s in states)
        grads = torch.autograd.grad(loss, [x, *m.parameters()])
        results.append((out, states, grads))
    (o1, s1, g1), (o2, s2, g2) = results
    torch.testing.assert_close(o1, o2)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(a, b)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", ["layer_norm", "zoneout", "recurrent_dropout"])
def test_sequence_ops_on_two_threads_split_the_recurrent_matmul(mode, trick):
    """On two threads with H = 512 the sequence ops' per-step matmuls run as per-thread
    column blocks (StepMatmul; the other tests run one thread, one block): still the
    reference loop's outputs, states and gradients, in float64, with resets."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        extra = TRICKS[trick]
        if extra == "zoneout":
            extra = (dict(zoneout_cell=0.3, zoneout_hidden=0.2) if mode == "LSTM"
                     else dict(zoneout=0.3))
        torch.manual_seed(0)
        m = getattr(rnnkit, mode)(8, 512, dtype=torch.float64, **extra)
        x = torch.randn(7, 3, 8, dtype=torch.float64, requires_grad=True)
        reset = torch.zeros(7, 3, dtype=torch.bool)
        reset[4, 1] = True
        results = []
        for fast in (True, False):
            m.fast = fast
            torch.manual_seed(1)
            out, state = m(x, reset=reset)
            states = state if isinstance(state, tuple) else (state,)
            loss = out.pow(2).sum() + sum(s.sin().sum() for s in states)
            results.append((out, *states, *torch.autograd.grad(loss, [x, *m.parameters()])))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode,trick", [("LSTM", "layer_norm"), ("GRU", "zoneout"),
                                        ("GRU", None)])
def test_double_backward_is_refused_unless_fast_is_off(mode, trick, loop):
    """A gradient penalty needs the backward's own derivative, which the fast loop does not
    have: it refuses (never a silently missing term), and fast=False gives the right one."""
    m = (_module(mode, trick) if trick else rnnkit.GRU(3, 5, batch_first=True)).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)

    def penalty():
        torch.manual_seed(1)
        out, _ = m(x)
        gx, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), list(m.parameters()))

    if trick is not None or fast_loop.compiled_steps(x):
        with pytest.raises(RuntimeError, match="fast=False"):
            penalty()
    m.fast = False
    slow = penalty()
    if trick is None:  # every trick off: torch's own kernel and torch.nn.GRU agree
        ref = torch.nn.GRU(3, 5, batch_first=True).double()
        ref.load_state_dict(m.state_dict())
        m = ref
        for a, b in zip(slow, penalty()):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_states_and_gradients_of_any_strides(mode, loop):
    """An initial state or an incoming gradient whose last dimension is strided (a permuted
    tensor) gives what a contiguous copy gives."""
    m = _module(mode, "zoneout").eval()
    x = torch.randn(2, 4, 3)
    h0 = torch.randn(5, 2, 2).permute(2, 1, 0)  # [2, 2, 5] with a last-dim stride of 4
    weights = torch.randn(5, 2, 2)
    results = []
    for state in (h0, h0.contiguous()):
        state = (state, torch.zeros(2, 2, 5)) if mode == "LSTM" else state
        out, hn = m(x, state)
        hn = hn[0] if mode == "LSTM" else hn
        loss = hn.permute(2, 1, 0).mul(weights).sum() + out.sum()  # d(hn) arrives permuted
        results.append([out, *torch.autograd.grad(loss, list(m.parameters()))])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
def test_kernels_refuse_tensors_of_the_wrong_size():
    """The kernels read raw rows: a mask or an initial state with fewer rows than the batch
    is refused by name, never read past its end; gru_layer broadcasts a [1, H] mask first,
    like the eager step."""
    T_, B_, H_ = 5, 4, 7
    gates, w_t = torch.randn(T_, B_, 3 * H_), torch.randn(H_, 3 * H_)
    reset = torch.zeros(T_, B_, dtype=torch.bool)

    def forward(mask=None, h_init=None):
        torch.ops.rnnkit.gru_forward_seq(
            gates, w_t, candidate=mask, reset_rows=reset if h_init is not None else None,
            h_init=h_init, h=torch.zeros(T_ + 1, B_, H_), act=torch.empty(T_, B_, 3 * H_),
            a_n=torch.empty(T_, B_, H_))

    forward(torch.ones(B_, H_), torch.zeros(B_, H_))
    with pytest.raises(RuntimeError, match=r"candidate must be \[4, 7\]"):
        forward(mask=torch.ones(1, 7))
    with pytest.raises(RuntimeError, match=r"h_init must be \[4, 7\]"):
        forward(h_init=torch.randn(3, 7))
    gates, h0, w = torch.randn(5, 4, 21), torch.randn(4, 7), torch.randn(21, 7)
    mask = torch.rand(1, 7) * 2
    broadcast, _ = gru_layer(gates, h0, w, candidate_mask=mask)
    full, _ = gru_layer(gates, h0, w, candidate_mask=mask.expand(4, 7).contiguous())
    torch.testing.assert_close(broadcast, full)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
def test_sequence_ops_refuse_buffers_of_the_wrong_size():
    """The sequence ops walk raw pointers over T steps: a buffer one step short, or a reset
    mask that is not bool [T, B], is refused by name before anything is read."""
    T_, B_, H_ = 4, 2, 3
    gates, w_t = torch.randn(T_, B_, 4 * H_), torch.randn(H_, 4 * H_)
    hs, cs = torch.zeros(T_ + 1, B_, H_), torch.zeros(T_ + 1, B_, H_)
    act, tanh_c = torch.empty(T_, B_, 4 * H_), torch.empty(T_, B_, H_)

    def forward(hs=hs, reset=None, h_init=None, c_init=None):
        torch.ops.rnnkit.lstm_forward_seq(gates, w_t, reset_rows=reset, h_init=h_init,
                                          c_init=c_init, h=hs, c=cs, act=act, c_new=cs[1:],
                                          tanh_c=tanh_c)

    forward()
    with pytest.raises(RuntimeError, match=r"h must be a contiguous \[5, 2, 3\]"):
        forward(hs=torch.zeros(T_, B_, H_))
    with pytest.raises(RuntimeError, match=r"reset_rows must be bool \[4, 2\]"):
        forward(reset=torch.zeros(T_, B_), h_init=hs[0], c_init=cs[0])
    with pytest.raises(RuntimeError, match="reset_rows needs h_init and c_init"):
        forward(reset=torch.zeros(T_, B_, dtype=torch.bool))
    with pytest.raises(RuntimeError, match=r"keep_h must be a contiguous \[4, 2, 3\]"):
        torch.ops.rnnkit.gru_forward_seq(torch.randn(T_, B_, 3 * H_), torch.randn(H_, 3 * H_),
                                         keep_h=torch.rand(T_, 1, H_), h=hs,
                                         act=torch.empty(T_, B_, 3 * H_),
                                         a_n=torch.empty(T_, B_, H_))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("mode,trick", [("LSTM", "layer_norm"), ("GRU", "zoneout"),
                                        ("GRU", None)])
def test_torch_func_transforms_run_the_differentiable_paths(mode, trick):
    """jvp (forward-mode AD) and vmap through a model that would run the fast loop: they
    take the autograd paths instead, and give the finite difference and the batched call."""
    m = (_module(mode, trick) if trick else rnnkit.GRU(3, 5, batch_first=True)).double().eval()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    v = torch.randn_like(x)

    def f(inputs):
        return m(inputs)[0]

    _, tangent = torch.func.jvp(f, (x,), (v,))
    eps = 1e-6
    torch.testing.assert_close(tangent, (f(x + eps * v) - f(x - eps * v)) / (2 * eps),
                               atol=1e-7, rtol=1e-6)
    per_row = torch.func.vmap(lambda row: f(row[None])[0])(x)
    torch.testing.assert_close(per_row, f(x))


def test_a_gru_step_without_grad_runs_torchs_kernel(monkeypatch):
    """One step with no backward to pay for goes to torch's kernel (faster for streaming);
    with gradients, or over many steps, the compiled loop runs. Both give the same numbers."""
    if not kernels.available():
        pytest.skip("the compiled steps are not built here")
    torch.manual_seed(0)
    gru = rnnkit.GRU(5, 7, num_layers=2)
    x, h0 = torch.randn(1, 3, 5), torch.randn(2, 3, 7)
    expected, h_expected = gru(x, h0)  # with grad: the compiled loop
    calls = []
    real = fast_loop.gru_layer
    monkeypatch.setattr(fast_loop, "gru_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        out, h = gru(x, h0)
        assert calls == []
        gru(torch.randn(40, 3, 5), h0)  # a sequence keeps the loop
        assert calls
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_expected.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
def test_input_projection_is_linear_in_kept_buffers(bias, monkeypatch):
    """F.linear's values and gradients (float64 gradcheck, with and without bias, with and
    without a gradient for x), from kept workspace buffers: an output still held is never
    handed out again, and a dropped one is."""
    monkeypatch.setattr(workspace, "MIN_BYTES", 0)  # keep even these small outputs
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *a: fast_loop.input_projection(*a), inputs)
    out, ref = fast_loop.input_projection(*inputs), F.linear(*inputs)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    d_out = torch.randn_like(ref)
    for leaves in (inputs, inputs[1:]):  # x with and without a gradient
        x.requires_grad_(leaves[0] is x)
        out, ref = fast_loop.input_projection(*inputs), F.linear(*inputs)
        for a, e in zip(torch.autograd.grad(out, leaves, d_out),
                        torch.autograd.grad(ref, leaves, d_out)):
            torch.testing.assert_close(a, e)
    workspace.clear()  # only the buffers made below are kept
    held = fast_loop.input_projection(*inputs).detach()
    values = held.clone()
    second = fast_loop.input_projection(2 * x, w, b)
    assert second.data_ptr() != held.data_ptr()
    torch.testing.assert_close(held, values, rtol=0, atol=0)
    ptr = second.data_ptr()
    del second
    assert fast_loop.input_projection(x, w, b).data_ptr() == ptr
    workspace.clear()


def _positional_parameters(func) -> int:
    import inspect

    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds and p.name not in ("self", "ctx")
               for p in inspect.signature(func).parameters.values())


def test_no_engine_function_takes_more_than_ten_positional_arguments():
    """The fast loop and the modules' layer methods pass bundles (LayerNorms, Masks, Resets,
    the buffers) instead of long runs of tensors whose order changes between functions."""
    import inspect

    from rnnkit import rnn

    modules = {c for m in (rnn.LSTM, rnn.GRU) for c in m.__mro__ if c.__module__ == rnn.__name__}
    assert rnn._LoopPath in modules  # _RecurrentBase's parts, one concern a class
    owners = [fast_loop, fast_loop._LSTMLayer, fast_loop._GRULayer,
              *sorted(modules, key=lambda c: c.__name__)]
    counts = {}
    for owner in owners:
        for name, value in vars(owner).items():
            func = value.__func__ if isinstance(value, staticmethod) else value
            # "__resume_at_*": functions torch.compile (test_compile) adds to the module
            if (inspect.isfunction(func) and func.__module__ in ("rnnkit.fast_loop", "rnnkit.rnn")
                    and not name.startswith("__")):
                counts[f"{owner.__name__}.{name}"] = _positional_parameters(func)
    assert "rnnkit.fast_loop._lstm_forward_step" in counts
    assert {k: n for k, n in counts.items() if n > 10} == {}


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("cell,buffers", [("lstm", fast_loop.LSTMBuffers),
                                          ("gru", fast_loop.GRUBuffers)])
def test_sequence_op_schemas_take_the_bundles_fields_by_name_in_one_order(cell, buffers):
    """Past the input map (forward) or the weight (backward) every argument of the sequence
    ops is keyword-only, and the bundles' fields come in the bundles' order for both cells
    (the LSTM op had mask, keep_c, keep_h where Masks has candidate, keep_h, keep_c)."""
    bundles = [*fast_loop.LayerNorms._fields, *fast_loop.Masks._fields, "reset_rows",
               "h_init", "c_init"]
    for direction, positional in (("forward", 2), ("backward", 1)):
        args = getattr(torch.ops.rnnkit, f"{cell}_{direction}_seq").default._schema.arguments
        assert [a.kwarg_only for a in args] == [False] * positional + [True] * (
            len(args) - positional)
        names = [a.name for a in args]
        for fields in (bundles, buffers._fields):
            taken = [n for n in names if n in fields]
            assert taken == [n for n in fields if n in taken]
        assert set(buffers._fields) <= set(names)
