// The LSTM's time loop in compiled code: the elementwise part of one step, forward and
// backward, fused into one pass per row, and the whole loop over a sequence around it.
//
// The row functions (forward_rows, backward_rows) do everything between the matmuls that
// eager PyTorch would do in ~12 small ops per step: the layer norms of the input and recurrent
// maps, the gate nonlinearities, the cell update with recurrent dropout and zoneout, the
// layer norm of the cell, and the output. The sequence ops (lstm_{forward,backward}_seq) run
// them for every step, with the recurrent matmul (StepMatmul: per-thread column blocks into
// the step's slice of a preallocated buffer), resets and the recurrent weight gradient, so a
// layer costs one call each way. The math is exactly rnnkit.fast_loop._lstm_forward_step /
// _lstm_backward_step (the eager version, used when this file cannot be compiled, and the
// reference tests/test_fast_loop.py holds it to).
//
// Per-step rows are [B, N] with a contiguous last dimension; statistics are [2, T, B]
// (mean, rstd).
#include "rows.h"

#include <initializer_list>
#include <vector>

namespace {

using namespace rnnkit_step;

// One step's rows for the forward (absent ones are null), as lstm_forward_seq sets them.
template <typename T>
struct ForwardRows {
  Rows<T> x, raw_hh, c_prev, h_prev, candidate, keep_h, keep_c, act, c_new, c, tanh_c, h;
  StatRows<T> ih_stats, hh_stats, cell_stats;
  const T *ih_gain, *ih_bias, *hh_gain, *hh_bias, *cell_gain, *cell_bias;
};

template <typename T>
void forward_rows(const ForwardRows<T>& a, int64_t B, int64_t H) {
  const int64_t G = 4 * H;
  const bool cell_separate = a.c.p != a.c_new.p;
  for_rows(B, G, [&](int64_t b) {
    T* z = a.act(b);
    const T* xr = a.x(b);
    if (a.ih_gain) {  // z = LN(x): the input map's layer norm (its bias is ih_bias)
      row_layer_norm(xr, G, a.ih_gain, a.ih_bias, a.ih_stats, b,
                     [&](int64_t j, int64_t n, const Vec<T>& y) { store(y, z, j, n); });
      xr = z;
    }
    if (a.raw_hh) {  // z = x + LN(raw_hh): the recurrent map's layer norm (its bias is hh_bias)
      row_layer_norm(a.raw_hh(b), G, a.hh_gain, a.hh_bias, a.hh_stats, b,
                     [&](int64_t j, int64_t n, const Vec<T>& y) {
                       store(y + load(xr, j, n), z, j, n);
                     });
    } else if (a.hh_bias) {  // no layer norm: the plain recurrent bias (sequence op)
      vec_loop<T>(G, [&](int64_t j, int64_t n) {
        store(load(xr, j, n) + load(a.hh_bias, j, n), z, j, n);
      });
    } else if (xr != z) {
      std::copy(xr, xr + G, z);
    }
    // i, f, o = sigmoid; g = tanh (torch's gate order i, f, g, o)
    vec_loop<T>(2 * H, [&](int64_t j, int64_t n) { store(sigmoid(load(z, j, n)), z, j, n); });
    vec_loop<T>(H, [&](int64_t j, int64_t n) {
      store(fast_tanh(load(z + 2 * H, j, n)), z + 2 * H, j, n);
      store(sigmoid(load(z + 3 * H, j, n)), z + 3 * H, j, n);
    });
    const T *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
    const T *cp = a.c_prev(b), *hp = a.h_prev(b);
    const T *mk = a.candidate(b), *kc = a.keep_c(b), *kh = a.keep_h(b);
    T *cn = a.c_new(b), *cr = a.c(b), *tc = a.tanh_c(b), *hr = a.h(b);
    vec_loop<T>(H, [&](int64_t j, int64_t n) {  // c_new = f c_prev + i (g m); zoneout on c
      Vec<T> gm = mk ? load(g, j, n) * load(mk, j, n) : load(g, j, n);
      Vec<T> cv = load(i, j, n) * gm + load(f, j, n) * load(cp, j, n);
      store(cv, cn, j, n);
      if (kc) {
        Vec<T> p = load(cp, j, n);
        store(cv + load(kc, j, n) * (p - cv), cr, j, n);
      } else if (cell_separate) {
        store(cv, cr, j, n);
      }
    });
    if (a.cell_gain) {  // tanh(LN(c_new))
      row_layer_norm(cn, H, a.cell_gain, a.cell_bias, a.cell_stats, b,
                     [&](int64_t j, int64_t n, const Vec<T>& y) { store(fast_tanh(y), tc, j, n); });
    } else {
      vec_loop<T>(H, [&](int64_t j, int64_t n) { store(fast_tanh(load(cn, j, n)), tc, j, n); });
    }
    vec_loop<T>(H, [&](int64_t j, int64_t n) {  // h = o tanh(.); zoneout on h
      Vec<T> hv = load(o, j, n) * load(tc, j, n);
      if (kh) hv = hv + load(kh, j, n) * (load(hp, j, n) - hv);
      store(hv, hr, j, n);
    });
  });
}

// One step's rows for the backward, as lstm_backward_seq sets them. dc and dc_prev may be
// the same rows (each piece is read before it is written).
template <typename T>
struct BackwardRows {
  Rows<T> dh, dh_extra, dc, act, tanh_c, c_new, c_prev, candidate, keep_h, keep_c, raw_hh, raw_ih;
  Rows<T> d_gates, d_raw, d_x, d_cnorm, dh_direct, dc_prev;
  StatRows<T> cell_stats, hh_stats, ih_stats;
  const T *cell_gain, *hh_gain, *ih_gain;
};

template <typename T>
void backward_rows(const BackwardRows<T>& a, int64_t B, int64_t H) {
  const int64_t G = 4 * H;
  for_rows(B, G, [&](int64_t b) {
    std::vector<T> dcn_buf(H);
    T* d_cn = dcn_buf.data();
    const T *z = a.act(b), *tc = a.tanh_c(b), *cn = a.c_new(b);
    const T *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
    const T *cp = a.c_prev(b), *mk = a.candidate(b);
    const T *kc = a.keep_c(b), *kh = a.keep_h(b);
    const T *dhr = a.dh(b), *dhx = a.dh_extra(b), *dcr = a.dc(b);
    T* dz = a.d_gates(b);
    T* dhd = a.dh_direct(b);
    // dL/d(o), and dL/d(the tanh's input) into d_cn
    vec_loop<T>(H, [&](int64_t j, int64_t n) {
      Vec<T> d = load(dhr, j, n);
      if (dhx) d = d + load(dhx, j, n);
      if (kh) {  // zoneout on h: the kept fraction flows straight to h_{t-1}
        Vec<T> direct = d * load(kh, j, n);
        store(direct, dhd, j, n);
        d = d - direct;
      }
      Vec<T> t = load(tc, j, n), ov = load(o, j, n);
      store(d * t * ov * (Vec<T>(1) - ov), dz + 3 * H, j, n);
      store(d * ov * (Vec<T>(1) - t * t), d_cn, j, n);
    });
    if (a.cell_gain) {  // through the cell's layer norm
      std::copy(d_cn, d_cn + H, a.d_cnorm(b));
      T mean, rstd;
      a.cell_stats.read(b, mean, rstd);
      row_ln_backward(d_cn, cn, a.cell_gain, mean, rstd, H, d_cn);
    }
    T* dcp = a.dc_prev(b);
    vec_loop<T>(H, [&](int64_t j, int64_t n) {
      Vec<T> d = load(d_cn, j, n);  // dL/d(c_new)
      Vec<T> from_next = load(dcr, j, n), direct(0);
      if (kc) {
        direct = from_next * load(kc, j, n);
        d = d + from_next - direct;
      } else {
        d = d + from_next;
      }
      Vec<T> iv = load(i, j, n), fv = load(f, j, n), gv = load(g, j, n);
      Vec<T> gm = mk ? gv * load(mk, j, n) : gv;
      Vec<T> im = mk ? iv * load(mk, j, n) : iv;
      const Vec<T> one(1);
      store(d * gm * iv * (one - iv), dz, j, n);
      store(d * load(cp, j, n) * fv * (one - fv), dz + H, j, n);
      store(d * im * (one - gv * gv), dz + 2 * H, j, n);
      store(d * fv + direct, dcp, j, n);
    });
    if (a.hh_gain) {  // through the recurrent map's layer norm
      T mean, rstd;
      a.hh_stats.read(b, mean, rstd);
      row_ln_backward(dz, a.raw_hh(b), a.hh_gain, mean, rstd, G, a.d_raw(b));
    }
    if (a.ih_gain) {  // through the input map's layer norm
      T mean, rstd;
      a.ih_stats.read(b, mean, rstd);
      row_ln_backward(dz, a.raw_ih(b), a.ih_gain, mean, rstd, G, a.d_x(b));
    }
  });
}

// The sequence ops: one call runs a layer's whole time loop, forward or backward. Their
// keyword-only arguments come in one order, the Python bundles' (rnnkit.fast_loop): the layer
// norms (ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias), the masks (candidate,
// keep_h, keep_c), the resets (reset_rows, h_init, c_init), then the buffers (LSTMBuffers: h,
// c, act, raw_hh, c_new, tanh_c, ih_stats, hh_stats, cell_stats). h and c are [T + 1, B, H]
// (h[0] and c[0] the initial state), the other buffers [T, B, N]; reset_rows is a [T, B] bool
// mask (rows that restart from h_init, c_init before step t), and the backward recomputes
// those restarted states instead of keeping them.
void check_lstm_seq(const OptTensor& ih_gain, const OptTensor& hh_gain,
                    const OptTensor& cell_gain, const OptTensor& candidate,
                    const OptTensor& keep_h, const OptTensor& keep_c,
                    const OptTensor& reset_rows, const OptTensor& h_init,
                    const OptTensor& c_init, const Tensor& h, const Tensor& c, const Tensor& act,
                    const OptTensor& raw_hh, const Tensor& c_new, const Tensor& tanh_c,
                    const OptTensor& ih_stats, const OptTensor& hh_stats,
                    const OptTensor& cell_stats, const char* op) {
  TORCH_CHECK(act.dim() == 3 && act.size(2) % 4 == 0, "rnnkit ", op,
              ": act must be [T, B, 4 * H], got sizes ", act.sizes());
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 4;
  check_seq(act, T_, B, G, op, "act");
  if (raw_hh) check_seq(*raw_hh, T_, B, G, op, "raw_hh");
  check_seq(h, T_ + 1, B, H, op, "h");
  check_seq(c, T_ + 1, B, H, op, "c");
  check_seq(c_new, T_, B, H, op, "c_new");
  check_seq(tanh_c, T_, B, H, op, "tanh_c");
  for (const OptTensor* t : {&keep_h, &keep_c}) {
    if (*t) check_seq(**t, T_, B, H, op, "keep masks");
  }
  if (candidate) check_rows(*candidate, B, H, op, "candidate");
  for (const OptTensor* t : {&h_init, &c_init}) {
    if (*t) check_rows(**t, B, H, op, "initial states");
  }
  if (reset_rows) {
    check_reset_rows(*reset_rows, T_, B, op);
    TORCH_CHECK(h_init && c_init, "rnnkit ", op, ": reset_rows needs h_init and c_init");
  }
  for (const OptTensor* t : {&ih_gain, &hh_gain}) {
    if (*t) check_vector(**t, G, op, "gate layer norm gains");
  }
  if (cell_gain) check_vector(*cell_gain, H, op, "cell layer norm gain");
  for (const OptTensor* t : {&ih_stats, &hh_stats, &cell_stats}) {
    if (*t) check_seq_stats(**t, T_, B, op, "layer norm statistics");
  }
  TORCH_CHECK(!hh_gain || (raw_hh && hh_stats), "rnnkit ", op,
              ": hh_gain needs raw_hh and hh_stats");
  TORCH_CHECK(!ih_gain || (hh_gain && ih_stats), "rnnkit ", op,
              ": ih_gain needs hh_gain and ih_stats");
  TORCH_CHECK(!cell_gain || cell_stats, "rnnkit ", op, ": cell_gain needs cell_stats");
  check_dtypes({&ih_gain, &hh_gain, &cell_gain, &candidate, &keep_h, &keep_c, &h_init, &c_init,
                &raw_hh, &ih_stats, &hh_stats, &cell_stats},
               act, op, "an optional tensor");
  check_dtypes(TensorList{&h, &c, &c_new, &tanh_c}, act, op, "a state buffer");
}

void lstm_forward_seq(const Tensor& input_gates, const Tensor& weight_t,
                      const OptTensor& ih_gain, const OptTensor& ih_bias,
                      const OptTensor& hh_gain, const OptTensor& hh_bias,
                      const OptTensor& cell_gain, const OptTensor& cell_bias,
                      const OptTensor& candidate, const OptTensor& keep_h,
                      const OptTensor& keep_c, const OptTensor& reset_rows,
                      const OptTensor& h_init, const OptTensor& c_init, Tensor h, Tensor c,
                      Tensor act, const OptTensor& raw_hh, Tensor c_new, Tensor tanh_c,
                      const OptTensor& ih_stats, const OptTensor& hh_stats,
                      const OptTensor& cell_stats) {
  const char* op = "lstm_forward_seq";
  check_lstm_seq(ih_gain, hh_gain, cell_gain, candidate, keep_h, keep_c, reset_rows, h_init,
                 c_init, h, c, act, raw_hh, c_new, tanh_c, ih_stats, hh_stats, cell_stats, op);
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 4;
  check_seq(input_gates, T_, B, G, op, "input_gates");
  check_dtype(input_gates, act, op, "input_gates");
  TORCH_CHECK(weight_t.dim() == 2 && weight_t.size(0) == H && weight_t.size(1) == G, "rnnkit ",
              op, ": weight_t must be [", H, ", ", G, "], got sizes ", weight_t.sizes());
  for (const OptTensor* t : {&ih_bias, &hh_bias}) {
    if (*t) check_vector(**t, G, op, "gate layer norm biases");
  }
  if (cell_bias) check_vector(*cell_bias, H, op, "cell layer norm bias");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_lstm_forward_seq", [&] {
    using T = scalar_t;
    Tensor h_restart, c_restart;  // the state restarted rows start from
    if (reset_rows) {
      h_restart = at::empty({B, H}, h.options());
      c_restart = at::empty({B, H}, c.options());
    }
    ForwardRows<T> a{};
    a.candidate = rows<T>(candidate);
    a.ih_gain = data<T>(ih_gain), a.ih_bias = data<T>(ih_bias);
    a.hh_gain = data<T>(hh_gain), a.hh_bias = data<T>(hh_bias);
    a.cell_gain = data<T>(cell_gain), a.cell_bias = data<T>(cell_bias);
    if (ih_gain) {  // into act, where each step then adds LN(raw_hh)
      input_layer_norm<T>(input_gates, a.ih_gain, a.ih_bias, ih_stats, act);
      a.ih_gain = nullptr;
    }
    const StepMatmul recurrent(weight_t);
    for (int64_t t = 0; t < T_; ++t) {
      const Tensor h_prev = state_before<T>(reset_rows, t, h_init, h, h_restart);
      const Tensor c_prev = state_before<T>(reset_rows, t, c_init, c, c_restart);
      if (raw_hh) {
        recurrent((*raw_hh)[t], h_prev);
      } else {  // no layer norm: the step reads W_ih x + b + W_hh h, summed into act
        const Tensor x_t = input_gates[t];
        recurrent(act[t], h_prev, StepMatmul::Mode::kAdd, &x_t);
      }
      a.x = raw_hh && !ih_gain ? step_rows<T>(input_gates, t) : step_rows<T>(act, t);
      a.raw_hh = step_rows<T>(raw_hh, t);
      a.c_prev = rows<T>(c_prev), a.h_prev = rows<T>(h_prev);
      a.keep_h = step_rows<T>(keep_h, t), a.keep_c = step_rows<T>(keep_c, t);
      a.act = step_rows<T>(act, t), a.c_new = step_rows<T>(c_new, t);
      a.c = step_rows<T>(c, t + 1), a.tanh_c = step_rows<T>(tanh_c, t);
      a.h = step_rows<T>(h, t + 1);
      a.ih_stats = step_stat_rows<T>(ih_stats, t), a.hh_stats = step_stat_rows<T>(hh_stats, t);
      a.cell_stats = step_stat_rows<T>(cell_stats, t);
      forward_rows(a, B, H);
    }
  });
}

// dh and dc hold dL/dh_T and dL/dc_T on entry and dL/dh0, dL/dc0 on return; d_hs [T, B, H] is
// dL/d(the output h of every step); d_h_init and d_c_init (zeros on entry) receive the
// gradient of every restart; d_weight is dL/dW_hh. raw_ih is the input map before its layer
// norm (with ih_gain); the buffers are the forward's.
void lstm_backward_seq(const Tensor& weight_hh, const OptTensor& d_hs, Tensor dh, Tensor dc,
                       const OptTensor& ih_gain, const OptTensor& hh_gain,
                       const OptTensor& cell_gain, const OptTensor& candidate,
                       const OptTensor& keep_h, const OptTensor& keep_c,
                       const OptTensor& reset_rows, const OptTensor& h_init,
                       const OptTensor& c_init, const Tensor& h, const Tensor& c,
                       const Tensor& act, const OptTensor& raw_hh, const Tensor& c_new,
                       const Tensor& tanh_c, const OptTensor& ih_stats,
                       const OptTensor& hh_stats, const OptTensor& cell_stats,
                       const OptTensor& raw_ih, Tensor d_gates, const OptTensor& d_raw,
                       const OptTensor& d_x, const OptTensor& d_cnorm,
                       const OptTensor& d_h_init, const OptTensor& d_c_init, Tensor d_weight) {
  const char* op = "lstm_backward_seq";
  check_lstm_seq(ih_gain, hh_gain, cell_gain, candidate, keep_h, keep_c, reset_rows, h_init,
                 c_init, h, c, act, raw_hh, c_new, tanh_c, ih_stats, hh_stats, cell_stats, op);
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 4;
  check_seq(d_gates, T_, B, G, op, "d_gates");
  for (const OptTensor* t : {&d_raw, &raw_ih, &d_x}) {
    if (*t) check_seq(**t, T_, B, G, op, "optional gate buffers");
  }
  for (const OptTensor* t : {&d_hs, &d_cnorm}) {
    if (*t) check_seq(**t, T_, B, H, op, "optional state buffers");
  }
  for (const Tensor* t : TensorList{&dh, &dc}) check_rows(*t, B, H, op, "dh and dc");
  for (const OptTensor* t : {&d_h_init, &d_c_init}) {
    if (*t) check_rows(**t, B, H, op, "initial state gradients");
  }
  check_weights(weight_hh, d_weight, G, H, op);
  TORCH_CHECK(!hh_gain || d_raw, "rnnkit ", op, ": hh_gain needs d_raw");
  TORCH_CHECK(!ih_gain || (raw_ih && d_x), "rnnkit ", op, ": ih_gain needs raw_ih and d_x");
  TORCH_CHECK(!cell_gain || d_cnorm, "rnnkit ", op, ": cell_gain needs d_cnorm");
  TORCH_CHECK(!reset_rows || (d_h_init && d_c_init), "rnnkit ", op,
              ": reset_rows needs d_h_init and d_c_init");
  check_dtypes({&d_hs, &raw_ih, &d_raw, &d_x, &d_cnorm, &d_h_init, &d_c_init}, act, op,
               "an optional tensor");
  check_dtypes(TensorList{&dh, &dc, &d_gates, &d_weight}, act, op, "a gradient buffer");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_lstm_backward_seq", [&] {
    using T = scalar_t;
    Tensor c_restart = reset_rows ? at::empty({B, H}, c.options()) : Tensor();
    Tensor dh_direct = keep_h ? at::empty({B, H}, dh.options()) : Tensor();
    const Tensor& d_pre = d_raw ? *d_raw : d_gates;  // dL/d(W_hh h_{t-1}) of every step
    BackwardRows<T> a{};
    a.dh = rows<T>(dh), a.dc = rows<T>(dc), a.dc_prev = rows<T>(dc);
    a.candidate = rows<T>(candidate);
    a.dh_direct = keep_h ? rows<T>(dh_direct) : Rows<T>{};
    a.cell_gain = data<T>(cell_gain), a.hh_gain = data<T>(hh_gain);
    a.ih_gain = nullptr;  // the input map's layer norm: one pass after the loop
    const BackwardBookkeeping<T> book{ih_gain, reset_rows, h_init, h, ih_stats,
                                      raw_ih, d_gates, d_x, d_weight};
    const StepMatmul recurrent(weight_hh);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const Tensor c_prev = state_before<T>(reset_rows, t, c_init, c, c_restart);
      a.dh_extra = step_rows<T>(d_hs, t);
      a.act = step_rows<T>(act, t), a.tanh_c = step_rows<T>(tanh_c, t);
      a.c_new = step_rows<T>(c_new, t), a.c_prev = rows<T>(c_prev);
      a.keep_h = step_rows<T>(keep_h, t), a.keep_c = step_rows<T>(keep_c, t);
      a.raw_hh = step_rows<T>(raw_hh, t), a.raw_ih = step_rows<T>(raw_ih, t);
      a.d_gates = step_rows<T>(d_gates, t), a.d_raw = step_rows<T>(d_raw, t);
      a.d_x = step_rows<T>(d_x, t), a.d_cnorm = step_rows<T>(d_cnorm, t);
      a.cell_stats = step_stat_rows<T>(cell_stats, t);
      a.hh_stats = step_stat_rows<T>(hh_stats, t), a.ih_stats = step_stat_rows<T>(ih_stats, t);
      backward_rows(a, B, H);
      if (keep_h) {
        recurrent(dh, d_pre[t], StepMatmul::Mode::kAdd, &dh_direct);
      } else {
        recurrent(dh, d_pre[t]);
      }
      book.route_restarts(t, dh, d_h_init);
      book.route_restarts(t, dc, d_c_init);
    }
    book.finish(d_pre);
  });
}

}  // namespace

// Keyword-only after the first two, in the bundles' order (see check_lstm_seq's comment).
TORCH_LIBRARY(rnnkit, m) {
  m.def(
      "lstm_forward_seq(Tensor input_gates, Tensor weight_t, *, Tensor? ih_gain=None, "
      "Tensor? ih_bias=None, Tensor? hh_gain=None, Tensor? hh_bias=None, Tensor? cell_gain=None, "
      "Tensor? cell_bias=None, Tensor? candidate=None, Tensor? keep_h=None, Tensor? keep_c=None, "
      "Tensor? reset_rows=None, Tensor? h_init=None, Tensor? c_init=None, Tensor(a!) h, "
      "Tensor(b!) c, Tensor(c!) act, Tensor(d!)? raw_hh=None, Tensor(e!) c_new, Tensor(f!) tanh_c, "
      "Tensor(g!)? ih_stats=None, Tensor(h!)? hh_stats=None, Tensor(i!)? cell_stats=None) -> ()");
  m.def(
      "lstm_backward_seq(Tensor weight_hh, *, Tensor? d_hs=None, Tensor(a!) dh, Tensor(b!) dc, "
      "Tensor? ih_gain=None, Tensor? hh_gain=None, Tensor? cell_gain=None, Tensor? candidate=None, "
      "Tensor? keep_h=None, Tensor? keep_c=None, Tensor? reset_rows=None, Tensor? h_init=None, "
      "Tensor? c_init=None, Tensor h, Tensor c, Tensor act, Tensor? raw_hh=None, Tensor c_new, "
      "Tensor tanh_c, Tensor? ih_stats=None, Tensor? hh_stats=None, Tensor? cell_stats=None, "
      "Tensor? raw_ih=None, Tensor(c!) d_gates, Tensor(d!)? d_raw=None, Tensor(e!)? d_x=None, "
      "Tensor(f!)? d_cnorm=None, Tensor(g!)? d_h_init=None, Tensor(h!)? d_c_init=None, "
      "Tensor(i!) d_weight) -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward_seq", &lstm_forward_seq);
  m.impl("lstm_backward_seq", &lstm_backward_seq);
}
