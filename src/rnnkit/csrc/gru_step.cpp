// The GRU's time loop in compiled code: the elementwise part of one step, forward and backward,
// fused into one pass per row, and the whole loop over a sequence around it.
//
// The row functions (forward_rows, backward_rows) do everything between the recurrent map
// (W_hh h_{t-1} and its layer norm) and the next step that eager PyTorch does in ~8 small ops
// per step; the sequence ops (gru_{forward,backward}_seq) run them for every step together with the matmuls, the recurrent layer norm, resets and the recurrent weight
// gradient, one call per layer each way (Cho et al. 2014, torch's gate order r, z, n; z is
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
  Rows<T> x, a, h_prev, mask, keep_h, act, a_n, h;
};

template <typename T>
void forward_rows(const ForwardRows<T>& s, int64_t B, int64_t H) {
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *xr = s.x(b), *ar = s.a(b), *hp = s.h_prev(b);
    const T *mk = s.mask(b), *kh = s.keep_h(b);
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
  Rows<T> dh, dh_extra, act, a_n, h_prev, mask, keep_h, d_gates, d_a, dh_carry;
};

template <typename T>
void backward_rows(const BackwardRows<T>& s, int64_t B, int64_t H) {
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *z = s.act(b), *an = s.a_n(b), *hp = s.h_prev(b);
    const T *mk = s.mask(b), *kh = s.keep_h(b);
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

// The sequence ops: one call runs a layer's whole time loop, forward or backward. Buffers are
// [T, B, N] (hs [T + 1, B, H], hs[0] the initial state); reset is a [T, B] bool mask (rows
// that restart from h_init before step t), and the backward recomputes those restarted
// states instead of keeping them.
void check_gru_seq(const Tensor& act, const Tensor& hs, const Tensor& a_n, const OptTensor& raw,
                   const OptTensor& ih_gain, const OptTensor& ih_stats,
                   const OptTensor& hh_gain, const OptTensor& hh_stats, const OptTensor& mask,
                   const OptTensor& keep_h, const OptTensor& reset, const OptTensor& h_init,
                   const char* op) {
  TORCH_CHECK(act.dim() == 3 && act.size(2) % 3 == 0, "rnnkit ", op,
              ": act must be [T, B, 3 * H], got sizes ", act.sizes());
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 3;
  check_seq(act, T_, B, G, op, "act");
  check_seq(hs, T_ + 1, B, H, op, "hs");
  check_seq(a_n, T_, B, H, op, "a_n");
  if (raw) check_seq(*raw, T_, B, G, op, "raw");
  if (keep_h) check_seq(*keep_h, T_, B, H, op, "keep_h");
  if (mask) check_rows(*mask, B, H, op, "mask");
  if (h_init) check_rows(*h_init, B, H, op, "h_init");
  for (const OptTensor* t : {&ih_gain, &hh_gain}) {
    if (*t) check_vector(**t, G, op, "gate layer norm gains");
  }
  for (const OptTensor* t : {&ih_stats, &hh_stats}) {
    if (*t) check_seq_stats(**t, T_, B, op, "layer norm statistics");
  }
  TORCH_CHECK(!hh_gain || (raw && hh_stats), "rnnkit ", op, ": hh_gain needs raw and hh_stats");
  TORCH_CHECK(!ih_gain || ih_stats, "rnnkit ", op, ": ih_gain needs ih_stats");
  if (reset) {
    TORCH_CHECK(reset->scalar_type() == at::kBool && reset->dim() == 2 &&
                    reset->size(0) == T_ && reset->size(1) == B,
                "rnnkit ", op, ": reset must be bool [", T_, ", ", B, "], got ",
                reset->scalar_type(), " ", reset->sizes());
    TORCH_CHECK(h_init, "rnnkit ", op, ": reset needs h_init");
  }
  for (const OptTensor* t :
       {&raw, &ih_gain, &ih_stats, &hh_gain, &hh_stats, &mask, &keep_h, &h_init}) {
    if (*t) check_dtype(**t, act, op, "an optional tensor");
  }
  for (const Tensor* t : TensorList{&hs, &a_n}) check_dtype(*t, act, op, "a state buffer");
}

void gru_forward_seq(const Tensor& input_gates, const Tensor& weight_t, const OptTensor& ih_gain,
                     const OptTensor& ih_bias, const OptTensor& hh_gain,
                     const OptTensor& hh_bias, const OptTensor& mask, const OptTensor& keep_h,
                     const OptTensor& reset, const OptTensor& h_init, Tensor hs, Tensor act,
                     Tensor a_n, const OptTensor& raw, const OptTensor& ih_stats,
                     const OptTensor& hh_stats) {
  const char* op = "gru_forward_seq";
  check_gru_seq(act, hs, a_n, raw, ih_gain, ih_stats, hh_gain, hh_stats, mask, keep_h, reset,
                h_init, op);
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
    Tensor h_restart = reset ? at::empty({B, H}, hs.options()) : Tensor();
    Tensor a = at::empty({B, G}, act.options());  // the recurrent map of the current step
    const T *hg = data<T>(hh_gain), *hb = data<T>(hh_bias);
    ForwardRows<T> s{};
    s.a = rows<T>(a), s.mask = rows<T>(mask);
    // x of each step: LN(input_gates) written into act (each step reads its row of x before
    // writing the same row's activations), or input_gates itself
    if (ih_gain) {
      input_layer_norm<T>(input_gates, data<T>(ih_gain), data<T>(ih_bias), ih_stats, act);
    }
    const Tensor& x = ih_gain ? act : input_gates;
    const StepMatmul recurrent(weight_t);
    for (int64_t t = 0; t < T_; ++t) {
      Tensor h = hs[t];
      if (any_reset(reset, t)) {
        restart_rows<T>(*reset, t, *h_init, h, h_restart);
        h = h_restart;
      }
      if (raw) {  // a = LN(W_hh h) (its bias is hh_bias)
        recurrent((*raw)[t], h);
        const Rows<T> rr = step_rows<T>(raw, t);
        const StatRows<T> st = step_stat_rows<T>(hh_stats, t);
        for_rows(B, G, [&](int64_t b) {
          T* ar = s.a(b);
          row_layer_norm(rr(b), G, hg, hb, st, b,
                         [&](int64_t j, int64_t n, const Vec<T>& y) { store(y, ar, j, n); });
        });
      } else if (hh_bias) {
        recurrent(a, h, StepMatmul::Mode::kAdd, &*hh_bias);
      } else {
        recurrent(a, h);
      }
      s.x = step_rows<T>(x, t), s.h_prev = rows<T>(h);
      s.keep_h = step_rows<T>(keep_h, t), s.act = step_rows<T>(act, t);
      s.a_n = step_rows<T>(a_n, t), s.h = step_rows<T>(hs, t + 1);
      forward_rows(s, B, H);
    }
  });
}

// dh holds dL/dh_T on entry and dL/dh0 on return; d_h_init (zeros on entry) receives the
// gradient of every restart; d_gates is dL/dx, and with ih_gain d_x is dL/d(input_gates)
// before the layer norm (x the raw input_gates); d_a is dL/d(the recurrent map after its layer
// norm), d_raw (with layer norm) dL/d(W_hh h); d_weight is dL/dW_hh.
void gru_backward_seq(const Tensor& weight_hh, const OptTensor& d_hs, Tensor dh,
                      const Tensor& act, const Tensor& a_n, const Tensor& hs,
                      const OptTensor& mask, const OptTensor& keep_h, const OptTensor& reset,
                      const OptTensor& h_init, const OptTensor& raw, const OptTensor& hh_gain,
                      const OptTensor& hh_stats, const OptTensor& x, const OptTensor& ih_gain,
                      const OptTensor& ih_stats, Tensor d_gates, Tensor d_a,
                      const OptTensor& d_raw, const OptTensor& d_x, const OptTensor& d_h_init,
                      Tensor d_weight) {
  const char* op = "gru_backward_seq";
  check_gru_seq(act, hs, a_n, raw, ih_gain, ih_stats, hh_gain, hh_stats, mask, keep_h, reset,
                h_init, op);
  const int64_t T_ = act.size(0), B = act.size(1), G = act.size(2), H = G / 3;
  check_seq(d_gates, T_, B, G, op, "d_gates");
  check_seq(d_a, T_, B, G, op, "d_a");
  for (const OptTensor* t : {&d_raw, &x, &d_x}) {
    if (*t) check_seq(**t, T_, B, G, op, "optional gate buffers");
  }
  if (d_hs) check_seq(*d_hs, T_, B, H, op, "d_hs");
  check_rows(dh, B, H, op, "dh");
  if (d_h_init) check_rows(*d_h_init, B, H, op, "d_h_init");
  TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(0) == G && weight_hh.size(1) == H,
              "rnnkit ", op, ": weight_hh must be [", G, ", ", H, "], got sizes ",
              weight_hh.sizes());
  TORCH_CHECK(d_weight.dim() == 2 && d_weight.size(0) == G && d_weight.size(1) == H, "rnnkit ",
              op, ": d_weight must be [", G, ", ", H, "], got sizes ", d_weight.sizes());
  TORCH_CHECK(!hh_gain || d_raw, "rnnkit ", op, ": hh_gain needs d_raw");
  TORCH_CHECK(!reset || d_h_init, "rnnkit ", op, ": reset needs d_h_init");
  TORCH_CHECK(!ih_gain || (x && d_x), "rnnkit ", op, ": ih_gain needs x and d_x");
  for (const OptTensor* t : {&d_hs, &d_raw, &x, &d_x, &d_h_init}) {
    if (*t) check_dtype(**t, act, op, "an optional tensor");
  }
  for (const Tensor* t : TensorList{&dh, &d_gates, &d_a, &d_weight}) {
    check_dtype(*t, act, op, "a gradient buffer");
  }
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_gru_backward_seq", [&] {
    using T = scalar_t;
    Tensor h_restart = reset ? at::empty({B, H}, hs.options()) : Tensor();
    const Tensor& d_pre = hh_gain ? *d_raw : d_a;  // dL/d(W_hh h_{t-1}) of every step
    const T* hg = data<T>(hh_gain);
    BackwardRows<T> s{};
    s.dh = rows<T>(dh), s.dh_carry = rows<T>(dh), s.mask = rows<T>(mask);
    const StepMatmul recurrent(weight_hh);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      Tensor h_prev = hs[t];
      const bool restarts = any_reset(reset, t);
      if (restarts) {
        restart_rows<T>(*reset, t, *h_init, h_prev, h_restart);
        h_prev = h_restart;
      }
      s.dh_extra = step_rows<T>(d_hs, t), s.act = step_rows<T>(act, t);
      s.a_n = step_rows<T>(a_n, t), s.h_prev = rows<T>(h_prev);
      s.keep_h = step_rows<T>(keep_h, t), s.d_gates = step_rows<T>(d_gates, t);
      s.d_a = step_rows<T>(d_a, t);
      backward_rows(s, B, H);
      if (hh_gain) {  // through the recurrent map's layer norm
        const Rows<T> da = step_rows<T>(d_a, t), rr = step_rows<T>(raw, t);
        const Rows<T> dr = step_rows<T>(d_raw, t);
        const StatRows<T> st = step_stat_rows<T>(hh_stats, t);
        for_rows(B, G, [&](int64_t b) {
          T mean, rstd;
          st.read(b, mean, rstd);
          row_ln_backward(da(b), rr(b), hg, mean, rstd, G, dr(b));
        });
      }
      recurrent(dh, d_pre[t], StepMatmul::Mode::kAccumulate);
      if (restarts) {
        Tensor dhi = *d_h_init;
        route_restart_grad<T>(*reset, t, dh, dhi);
      }
    }
    recurrent_weight_grad<T>(d_pre, hs, reset, h_init, d_weight);
    if (ih_gain) input_layer_norm_backward<T>(d_gates, *x, data<T>(ih_gain), ih_stats, *d_x);
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "gru_forward_seq(Tensor input_gates, Tensor weight_t, Tensor? ih_gain, Tensor? ih_bias, "
      "Tensor? hh_gain, Tensor? hh_bias, Tensor? mask, Tensor? keep_h, Tensor? reset, "
      "Tensor? h_init, Tensor(a!) hs, Tensor(b!) act, Tensor(c!) a_n, Tensor(d!)? raw, "
      "Tensor(e!)? ih_stats, Tensor(f!)? hh_stats) -> ()");
  m.def(
      "gru_backward_seq(Tensor weight_hh, Tensor? d_hs, Tensor(a!) dh, Tensor act, Tensor a_n, "
      "Tensor hs, Tensor? mask, Tensor? keep_h, Tensor? reset, Tensor? h_init, Tensor? raw, "
      "Tensor? hh_gain, Tensor? hh_stats, Tensor? x, Tensor? ih_gain, Tensor? ih_stats, "
      "Tensor(b!) d_gates, Tensor(c!) d_a, Tensor(d!)? d_raw, Tensor(g!)? d_x, "
      "Tensor(e!)? d_h_init, Tensor(f!) d_weight) -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward_seq", &gru_forward_seq);
  m.impl("gru_backward_seq", &gru_backward_seq);
}
