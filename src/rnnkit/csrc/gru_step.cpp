// The GRU's time loop in compiled code: the elementwise part of one step, forward and backward,
// fused into one pass per row, and the whole loop over a sequence around it.
//
// The row functions (forward_rows, backward_rows) do everything between the recurrent map
// (W_hh h_{t-1} and its layer norm) and the next step that eager PyTorch does in ~8 small ops
// per step; the sequence ops (gru_{forward,backward}_seq) run them for every step together
// with the matmuls, the recurrent layer norm, resets and the recurrent weight gradient, one
// call per layer each way (Cho et al. 2014, torch's gate order r, z, n; z is
// the fraction of h kept):
//
//   r = sigmoid(x_r + a_r),  z = sigmoid(x_z + a_z),  n = tanh(x_n + r * a_n)
//   h' = (1 - z) (n m) + z h_{t-1},   h_t = h' + k (h_{t-1} - h')
//
// with x = W_ih x_t + b_ih (all steps at once, outside; or its layer norm, which the sequence
// ops apply in one pass before the loop), a = W_hh h_{t-1} + b_hh (or its layer norm), m the
// recurrent-dropout mask and k the zoneout keep mask. The math is exactly
// rnnkit.fast_loop._gru_forward_step / _gru_backward_step (the eager version, used when this
// file cannot be compiled, and the reference tests/test_fast_loop.py holds it to).
#include "rows.h"

#include <initializer_list>

namespace {

using namespace rnnkit_step;

// One step's rows, as gru_forward_seq sets them.
template <typename T>
struct ForwardRows {
  Rows<T> x, a, h_prev, candidate, keep_h, act, a_n, h;
};

template <typename T>
void forward_rows(const ForwardRows<T>& s, int64_t B, int64_t H) {
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *xr = s.x(b), *ar = s.a(b), *hp = s.h_prev(b);
    const T *mk = s.candidate(b), *kh = s.keep_h(b);
    T *z = s.act(b), *an = s.a_n(b), *hr = s.h(b);
    vec_loop<T>(H, [&](int64_t j, int64_t c) {
      Vec<T> r = sigmoid(load(xr, j, c) + load(ar, j, c));
      Vec<T> u = sigmoid(load(xr + H, j, c) + load(ar + H, j, c));
      Vec<T> a_nv = load(ar + 2 * H, j, c);
      Vec<T> n = fast_tanh(load(xr + 2 * H, j, c) + r * a_nv);
      store(r, z, j, c);
      store(u, z + H, j, c);
      store(n, z + 2 * H, j, c);
      store(a_nv, an, j, c);
      Vec<T> nm = mk ? n * load(mk, j, c) : n, p = load(hp, j, c);
      Vec<T> hv = nm + u * (p - nm);
      if (kh) hv = hv + load(kh, j, c) * (p - hv);
      store(hv, hr, j, c);
    });
  });
}

// One step's rows for the backward, as gru_backward_seq sets them. dh_carry may be dh
// itself: each piece of dh is read before that piece is written.
template <typename T>
struct BackwardRows {
  Rows<T> dh, dh_extra, act, a_n, h_prev, candidate, keep_h, d_gates, d_a, dh_carry;
};

template <typename T>
void backward_rows(const BackwardRows<T>& s, int64_t B, int64_t H) {
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *z = s.act(b), *an = s.a_n(b), *hp = s.h_prev(b);
    const T *mk = s.candidate(b), *kh = s.keep_h(b);
    const T *dhr = s.dh(b), *dhx = s.dh_extra(b);
    T *dz = s.d_gates(b), *da = s.d_a(b), *carry = s.dh_carry(b);
    const Vec<T> one(1);
    vec_loop<T>(H, [&](int64_t j, int64_t c) {
      Vec<T> d = load(dhr, j, c), direct(0);
      if (dhx) d = d + load(dhx, j, c);
      if (kh) {  // zoneout: the kept fraction flows straight to h_{t-1}
        direct = d * load(kh, j, c);
        d = d - direct;
      }
      Vec<T> r = load(z, j, c), u = load(z + H, j, c), n = load(z + 2 * H, j, c);
      Vec<T> m = mk ? load(mk, j, c) : one;
      Vec<T> du = d * (load(hp, j, c) - n * m) * u * (one - u);
      Vec<T> dn = d * (one - u) * m * (one - n * n);
      Vec<T> dr = dn * load(an, j, c) * r * (one - r);
      store(dr, dz, j, c);
      store(du, dz + H, j, c);
      store(dn, dz + 2 * H, j, c);
      store(dr, da, j, c);
      store(du, da + H, j, c);
      store(dn * r, da + 2 * H, j, c);
      store(d * u + direct, carry, j, c);
    });
  });
}

// The sequence ops: one call runs a layer's whole time loop, forward or backward. Their
// keyword-only arguments come in the LSTM's order (lstm_step.cpp) less the cell's: the layer
// norms (ih_gain, ih_bias, hh_gain, hh_bias), the masks (candidate, keep_h), the resets
// (reset_rows, h_init), then the buffers (GRUBuffers: h, act, a_n, raw_hh; then ih_stats,
// hh_stats). h is [T + 1, B, H] (h[0] the initial state), the other buffers [T, B, N];
// reset_rows is a [T, B] bool mask (rows that restart from h_init before step t), and the
// backward recomputes those restarted states instead of keeping them.
void check_gru_seq(const OptTensor& ih_gain, const OptTensor& hh_gain,
                   const OptTensor& candidate, const OptTensor& keep_h,
                   const OptTensor& reset_rows, const OptTensor& h_init, const Tensor& h,
                   const Tensor& act, const Tensor& a_n, const OptTensor& raw_hh,
                   const OptTensor& ih_stats, const OptTensor& hh_stats, const char* op) {
  TORCH_CHECK(act.dim() == 3 && act.size(2) % 3 == 0, "rnnkit ", op,
              ": act must be [T, B, 3 * H], got sizes ", act.sizes());
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 3;
  check_seq(act, T_, B, G, op, "act");
  check_seq(h, T_ + 1, B, H, op, "h");
  check_seq(a_n, T_, B, H, op, "a_n");
  if (raw_hh) check_seq(*raw_hh, T_, B, G, op, "raw_hh");
  if (keep_h) check_seq(*keep_h, T_, B, H, op, "keep_h");
  if (candidate) check_rows(*candidate, B, H, op, "candidate");
  if (h_init) check_rows(*h_init, B, H, op, "h_init");
  for (const OptTensor* t : {&ih_gain, &hh_gain}) {
    if (*t) check_vector(**t, G, op, "gate layer norm gains");
  }
  for (const OptTensor* t : {&ih_stats, &hh_stats}) {
    if (*t) check_seq_stats(**t, T_, B, op, "layer norm statistics");
  }
  TORCH_CHECK(!hh_gain || (raw_hh && hh_stats), "rnnkit ", op,
              ": hh_gain needs raw_hh and hh_stats");
  TORCH_CHECK(!ih_gain || ih_stats, "rnnkit ", op, ": ih_gain needs ih_stats");
  if (reset_rows) {
    check_reset_rows(*reset_rows, T_, B, op);
    TORCH_CHECK(h_init, "rnnkit ", op, ": reset_rows needs h_init");
  }
  check_dtypes({&ih_gain, &hh_gain, &candidate, &keep_h, &h_init, &raw_hh, &ih_stats, &hh_stats},
               act, op, "an optional tensor");
  check_dtypes(TensorList{&h, &a_n}, act, op, "a state buffer");
}

void gru_forward_seq(const Tensor& input_gates, const Tensor& weight_t, const OptTensor& ih_gain,
                     const OptTensor& ih_bias, const OptTensor& hh_gain,
                     const OptTensor& hh_bias, const OptTensor& candidate,
                     const OptTensor& keep_h, const OptTensor& reset_rows,
                     const OptTensor& h_init, Tensor h, Tensor act, Tensor a_n,
                     const OptTensor& raw_hh, const OptTensor& ih_stats,
                     const OptTensor& hh_stats) {
  const char* op = "gru_forward_seq";
  check_gru_seq(ih_gain, hh_gain, candidate, keep_h, reset_rows, h_init, h, act, a_n, raw_hh,
                ih_stats, hh_stats, op);
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 3;
  check_seq(input_gates, T_, B, G, op, "input_gates");
  check_dtype(input_gates, act, op, "input_gates");
  TORCH_CHECK(weight_t.dim() == 2 && weight_t.size(0) == H && weight_t.size(1) == G, "rnnkit ",
              op, ": weight_t must be [", H, ", ", G, "], got sizes ", weight_t.sizes());
  for (const OptTensor* t : {&ih_bias, &hh_bias}) {
    if (!*t) continue;
    check_vector(**t, G, op, "gate biases");
    check_dtype(**t, act, op, "a gate bias");
  }
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_gru_forward_seq", [&] {
    using T = scalar_t;
    Tensor h_restart = reset_rows ? at::empty({B, H}, h.options()) : Tensor();
    Tensor a = at::empty({B, G}, act.options());  // the recurrent map of the current step
    const T *hg = data<T>(hh_gain), *hb = data<T>(hh_bias);
    ForwardRows<T> s{};
    s.a = rows<T>(a), s.candidate = rows<T>(candidate);
    // x of each step: LN(input_gates) written into act (each step reads its row of x before
    // writing the same row's activations), or input_gates itself
    if (ih_gain) {
      input_layer_norm<T>(input_gates, data<T>(ih_gain), data<T>(ih_bias), ih_stats, act);
    }
    const Tensor& x = ih_gain ? act : input_gates;
    const StepMatmul recurrent(weight_t);
    for (int64_t t = 0; t < T_; ++t) {
      const Tensor h_prev = state_before<T>(reset_rows, t, h_init, h, h_restart);
      if (raw_hh) {  // a = LN(W_hh h) (its bias is hh_bias)
        recurrent((*raw_hh)[t], h_prev);
        const Rows<T> rr = step_rows<T>(raw_hh, t);
        const StatRows<T> st = step_stat_rows<T>(hh_stats, t);
        for_rows(B, G, [&](int64_t b) {
          T* ar = s.a(b);
          row_layer_norm(rr(b), G, hg, hb, st, b,
                         [&](int64_t j, int64_t n, const Vec<T>& y) { store(y, ar, j, n); });
        });
      } else if (hh_bias) {
        recurrent(a, h_prev, StepMatmul::Mode::kAdd, &*hh_bias);
      } else {
        recurrent(a, h_prev);
      }
      s.x = step_rows<T>(x, t), s.h_prev = rows<T>(h_prev);
      s.keep_h = step_rows<T>(keep_h, t), s.act = step_rows<T>(act, t);
      s.a_n = step_rows<T>(a_n, t), s.h = step_rows<T>(h, t + 1);
      forward_rows(s, B, H);
    }
  });
}

// dh holds dL/dh_T on entry and dL/dh0 on return; d_hs [T, B, H] is dL/d(the output h of
// every step); d_h_init (zeros on entry) receives the gradient of every restart; d_gates is
// dL/dx, and with ih_gain d_x is dL/d(input_gates) before the layer norm (raw_ih the input
// map before it); d_a is dL/d(the recurrent map after its layer norm), d_raw (with layer norm)
// dL/d(W_hh h); d_weight is dL/dW_hh.
void gru_backward_seq(const Tensor& weight_hh, const OptTensor& d_hs, Tensor dh,
                      const OptTensor& ih_gain, const OptTensor& hh_gain,
                      const OptTensor& candidate, const OptTensor& keep_h,
                      const OptTensor& reset_rows, const OptTensor& h_init, const Tensor& h,
                      const Tensor& act, const Tensor& a_n, const OptTensor& raw_hh,
                      const OptTensor& ih_stats, const OptTensor& hh_stats,
                      const OptTensor& raw_ih, Tensor d_gates, Tensor d_a,
                      const OptTensor& d_raw, const OptTensor& d_x, const OptTensor& d_h_init,
                      Tensor d_weight) {
  const char* op = "gru_backward_seq";
  check_gru_seq(ih_gain, hh_gain, candidate, keep_h, reset_rows, h_init, h, act, a_n, raw_hh,
                ih_stats, hh_stats, op);
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 3;
  check_seq(d_gates, T_, B, G, op, "d_gates");
  check_seq(d_a, T_, B, G, op, "d_a");
  for (const OptTensor* t : {&d_raw, &raw_ih, &d_x}) {
    if (*t) check_seq(**t, T_, B, G, op, "optional gate buffers");
  }
  if (d_hs) check_seq(*d_hs, T_, B, H, op, "d_hs");
  check_rows(dh, B, H, op, "dh");
  if (d_h_init) check_rows(*d_h_init, B, H, op, "d_h_init");
  check_weights(weight_hh, d_weight, G, H, op);
  TORCH_CHECK(!hh_gain || d_raw, "rnnkit ", op, ": hh_gain needs d_raw");
  TORCH_CHECK(!reset_rows || d_h_init, "rnnkit ", op, ": reset_rows needs d_h_init");
  TORCH_CHECK(!ih_gain || (raw_ih && d_x), "rnnkit ", op, ": ih_gain needs raw_ih and d_x");
  check_dtypes({&d_hs, &raw_ih, &d_raw, &d_x, &d_h_init}, act, op, "an optional tensor");
  check_dtypes(TensorList{&dh, &d_gates, &d_a, &d_weight}, act, op, "a gradient buffer");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_gru_backward_seq", [&] {
    using T = scalar_t;
    Tensor h_restart = reset_rows ? at::empty({B, H}, h.options()) : Tensor();
    const Tensor& d_pre = hh_gain ? *d_raw : d_a;  // dL/d(W_hh h_{t-1}) of every step
    const T* hg = data<T>(hh_gain);
    BackwardRows<T> s{};
    s.dh = rows<T>(dh), s.dh_carry = rows<T>(dh), s.candidate = rows<T>(candidate);
    const BackwardBookkeeping<T> book{ih_gain, reset_rows, h_init, h, ih_stats,
                                      raw_ih, d_gates, d_x, d_weight};
    const StepMatmul recurrent(weight_hh);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const Tensor h_prev = state_before<T>(reset_rows, t, h_init, h, h_restart);
      s.dh_extra = step_rows<T>(d_hs, t), s.act = step_rows<T>(act, t);
      s.a_n = step_rows<T>(a_n, t), s.h_prev = rows<T>(h_prev);
      s.keep_h = step_rows<T>(keep_h, t), s.d_gates = step_rows<T>(d_gates, t);
      s.d_a = step_rows<T>(d_a, t);
      backward_rows(s, B, H);
      if (hh_gain) {  // through the recurrent map's layer norm
        const Rows<T> da = step_rows<T>(d_a, t), rr = step_rows<T>(raw_hh, t);
        const Rows<T> dr = step_rows<T>(d_raw, t);
        const StatRows<T> st = step_stat_rows<T>(hh_stats, t);
        for_rows(B, G, [&](int64_t b) {
          T mean, rstd;
          st.read(b, mean, rstd);
          row_ln_backward(da(b), rr(b), hg, mean, rstd, G, dr(b));
        });
      }
      recurrent(dh, d_pre[t], StepMatmul::Mode::kAccumulate);
      book.route_restarts(t, dh, d_h_init);
    }
    book.finish(d_pre);
  });
}

}  // namespace

// Keyword-only after the first two, in the bundles' order (see check_gru_seq's comment).
TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "gru_forward_seq(Tensor input_gates, Tensor weight_t, *, Tensor? ih_gain=None, "
      "Tensor? ih_bias=None, Tensor? hh_gain=None, Tensor? hh_bias=None, Tensor? candidate=None, "
      "Tensor? keep_h=None, Tensor? reset_rows=None, Tensor? h_init=None, Tensor(a!) h, "
      "Tensor(b!) act, Tensor(c!) a_n, Tensor(d!)? raw_hh=None, Tensor(e!)? ih_stats=None, "
      "Tensor(f!)? hh_stats=None) -> ()");
  m.def(
      "gru_backward_seq(Tensor weight_hh, *, Tensor? d_hs=None, Tensor(a!) dh, "
      "Tensor? ih_gain=None, Tensor? hh_gain=None, Tensor? candidate=None, Tensor? keep_h=None, "
      "Tensor? reset_rows=None, Tensor? h_init=None, Tensor h, Tensor act, Tensor a_n, "
      "Tensor? raw_hh=None, Tensor? ih_stats=None, Tensor? hh_stats=None, Tensor? raw_ih=None, "
      "Tensor(b!) d_gates, Tensor(c!) d_a, Tensor(d!)? d_raw=None, Tensor(e!)? d_x=None, "
      "Tensor(f!)? d_h_init=None, Tensor(g!) d_weight) -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward_seq", &gru_forward_seq);
  m.impl("gru_backward_seq", &gru_backward_seq);
}
