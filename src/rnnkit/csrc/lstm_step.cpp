// The elementwise part of one LSTM step, forward and backward, fused into one pass per row.
//
// rnnkit.fast_loop runs the time loop and the matmuls (W_hh h_{t-1}, dz W_hh); these two ops
// do everything between them that eager PyTorch would do in ~12 small ops per step: the layer
// norms of the input and recurrent maps, the gate nonlinearities, the cell update with recurrent dropout
// and zoneout, the layer norm of the cell, and the output. The math is exactly
// rnnkit.fast_loop._lstm_forward_step / _lstm_backward_step (the eager version, used when this
// file cannot be compiled, and the reference tests/test_fast_loop.py holds it to).
//
// Per-step tensors are [B, N] with a contiguous last dimension; statistics are [2, B]
// (mean, rstd), possibly strided views of a [2, T, B] buffer.
#include "step_common.h"

#include <initializer_list>
#include <vector>

namespace {

using namespace rnnkit_step;

constexpr double kEps = 1e-5;  // fast_loop.EPS

// Layer-norm statistics of one row: mean and 1/sqrt(biased variance + eps).
template <typename T>
inline void row_stats(const T* x, int64_t n, T& mean, T& rstd) {
  Vec<T> acc(0);
  vec_loop<T>(n, [&](int64_t j, int64_t c) { acc += head(load(x, j, c), c); });
  mean = sum_lanes(acc) / n;
  Vec<T> sq(0);
  const Vec<T> m(mean);
  vec_loop<T>(n, [&](int64_t j, int64_t c) {
    Vec<T> d = head(load(x, j, c) - m, c);
    sq += d * d;
  });
  rstd = T(1) / std::sqrt(sum_lanes(sq) / n + T(kEps));
}

// dx of y = (x - mean) * rstd * gain + bias, given dy (Ba et al. 2016; as aten's backward).
// dx and dy may be the same row.
template <typename T>
inline void row_ln_backward(const T* dy, const T* x, const T* gain, T mean, T rstd, int64_t n,
                            T* dx) {
  const Vec<T> m(mean), r(rstd);
  Vec<T> a1(0), a2(0);  // sums of g and g * xhat, g = dy * gain
  vec_loop<T>(n, [&](int64_t j, int64_t c) {
    Vec<T> g = head(load(dy, j, c) * load(gain, j, c), c);
    a1 += g;
    a2 += g * ((load(x, j, c) - m) * r);
  });
  const Vec<T> mg(sum_lanes(a1) / n), mgx(sum_lanes(a2) / n);
  vec_loop<T>(n, [&](int64_t j, int64_t c) {
    Vec<T> xhat = (load(x, j, c) - m) * r;
    Vec<T> g = load(dy, j, c) * load(gain, j, c);
    store(r * (g - mg - xhat * mgx), dx, j, c);
  });
}

// Row b's layer-norm statistics in a [2, B] view: (mean, rstd).
template <typename T>
inline void write_stats(const Tensor& stats, int64_t b, T mean, T rstd) {
  T* st = stats.data_ptr<T>() + b * stats.stride(1);
  st[0] = mean;
  st[stats.stride(0)] = rstd;
}

template <typename T>
inline void read_stats(const Tensor& stats, int64_t b, T& mean, T& rstd) {
  const T* st = stats.data_ptr<T>() + b * stats.stride(1);
  mean = st[0];
  rstd = st[stats.stride(0)];
}

// y = LN(x) * gain + bias over one row, handed to emit(j, count, y) piece by piece; the
// statistics go to row b of `stats`.
template <typename T, typename F>
inline void row_layer_norm(const T* x, int64_t n, const T* gain, const T* bias,
                           const Tensor& stats, int64_t b, const F& emit) {
  T mean, rstd;
  row_stats(x, n, mean, rstd);
  write_stats(stats, b, mean, rstd);
  const Vec<T> m(mean), r(rstd);
  vec_loop<T>(n, [&](int64_t j, int64_t c) {
    Vec<T> y = (load(x, j, c) - m) * r * load(gain, j, c);
    emit(j, c, bias ? y + load(bias, j, c) : y);
  });
}

template <typename T>
void forward_impl(const Tensor& x, const OptTensor& ih_gain, const OptTensor& ih_bias,
                  const OptTensor& ih_stats, const OptTensor& raw, const OptTensor& hh_gain,
                  const OptTensor& hh_bias, const Tensor& c_prev, const Tensor& h_prev,
                  const OptTensor& cell_gain, const OptTensor& cell_bias, const OptTensor& mask,
                  const OptTensor& keep_c, const OptTensor& keep_h, Tensor& act, Tensor& c_new,
                  Tensor& c, Tensor& tanh_c, Tensor& h, const OptTensor& hh_stats,
                  const OptTensor& cell_stats) {
  const int64_t B = act.size(0), G = act.size(1), H = G / 4;
  const T* xg = ih_gain ? ih_gain->data_ptr<T>() : nullptr;
  const T* xb = ih_bias ? ih_bias->data_ptr<T>() : nullptr;
  const T* hg = hh_gain ? hh_gain->data_ptr<T>() : nullptr;
  const T* hb = hh_bias ? hh_bias->data_ptr<T>() : nullptr;
  const T* cg = cell_gain ? cell_gain->data_ptr<T>() : nullptr;
  const T* cb = cell_bias ? cell_bias->data_ptr<T>() : nullptr;
  const bool zone_c = keep_c.has_value(), cell_separate = !c.is_same(c_new);
  for_rows(B, G, [&](int64_t b) {
    T* z = ptr<T>(act, b);
    const T* xr = ptr<T>(x, b);
    if (xg) {  // z = LN(x): the input map's layer norm (its bias is ih_bias)
      row_layer_norm(xr, G, xg, xb, *ih_stats, b,
                     [&](int64_t j, int64_t n, const Vec<T>& y) { store(y, z, j, n); });
      xr = z;
    }
    if (raw) {  // z = x + LN(raw): the recurrent map's layer norm (its bias is hh_bias)
      row_layer_norm(ptr<T>(raw, b), G, hg, hb, *hh_stats, b,
                     [&](int64_t j, int64_t n, const Vec<T>& y) {
                       store(y + load(xr, j, n), z, j, n);
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
    const T *cp = ptr<T>(c_prev, b), *hp = ptr<T>(h_prev, b);
    const T *mk = ptr<T>(mask, b), *kc = ptr<T>(keep_c, b), *kh = ptr<T>(keep_h, b);
    T *cn = ptr<T>(c_new, b), *cr = ptr<T>(c, b), *tc = ptr<T>(tanh_c, b), *hr = ptr<T>(h, b);
    vec_loop<T>(H, [&](int64_t j, int64_t n) {  // c_new = f c_prev + i (g m); zoneout on c
      Vec<T> gm = mk ? load(g, j, n) * load(mk, j, n) : load(g, j, n);
      Vec<T> cv = load(i, j, n) * gm + load(f, j, n) * load(cp, j, n);
      store(cv, cn, j, n);
      if (zone_c) {
        Vec<T> p = load(cp, j, n);
        store(cv + load(kc, j, n) * (p - cv), cr, j, n);
      } else if (cell_separate) {
        store(cv, cr, j, n);
      }
    });
    if (cg) {  // tanh(LN(c_new))
      row_layer_norm(cn, H, cg, cb, *cell_stats, b, [&](int64_t j, int64_t n, const Vec<T>& y) {
        store(fast_tanh(y), tc, j, n);
      });
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

template <typename T>
void backward_impl(const Tensor& dh, const OptTensor& dh_extra, const Tensor& dc,
                   const Tensor& act, const Tensor& tanh_c, const Tensor& c_new,
                   const Tensor& c_prev, const OptTensor& mask, const OptTensor& keep_c,
                   const OptTensor& keep_h, const OptTensor& cell_gain,
                   const OptTensor& cell_stats, const OptTensor& raw, const OptTensor& hh_gain,
                   const OptTensor& hh_stats, const OptTensor& x, const OptTensor& ih_gain,
                   const OptTensor& ih_stats, Tensor& d_gates, const OptTensor& d_raw,
                   const OptTensor& d_x, const OptTensor& d_cnorm, const OptTensor& dh_direct,
                   Tensor& dc_prev) {
  const int64_t B = act.size(0), G = act.size(1), H = G / 4;
  const T* cg = cell_gain ? cell_gain->data_ptr<T>() : nullptr;
  const T* hg = hh_gain ? hh_gain->data_ptr<T>() : nullptr;
  const T* xg = ih_gain ? ih_gain->data_ptr<T>() : nullptr;
  for_rows(B, G, [&](int64_t b) {
    std::vector<T> dcn_buf(H), dhn_buf(H);
    T *d_cn = dcn_buf.data(), *dhn = dhn_buf.data();
    const T *z = ptr<T>(act, b), *tc = ptr<T>(tanh_c, b), *cn = ptr<T>(c_new, b);
    const T *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
    const T *cp = ptr<T>(c_prev, b), *mk = ptr<T>(mask, b);
    const T *kc = ptr<T>(keep_c, b), *kh = ptr<T>(keep_h, b);
    const T *dhr = ptr<T>(dh, b), *dhx = ptr<T>(dh_extra, b), *dcr = ptr<T>(dc, b);
    T* dz = ptr<T>(d_gates, b);
    T* dhd = ptr<T>(dh_direct, b);
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
      store(d, dhn, j, n);
    });
    if (cg) {  // through the cell's layer norm
      std::copy(d_cn, d_cn + H, ptr<T>(d_cnorm, b));
      T mean, rstd;
      read_stats(*cell_stats, b, mean, rstd);
      row_ln_backward(d_cn, cn, cg, mean, rstd, H, d_cn);
    }
    T* dcp = ptr<T>(dc_prev, b);
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
    if (hg) {  // through the recurrent map's layer norm
      T mean, rstd;
      read_stats(*hh_stats, b, mean, rstd);
      row_ln_backward(dz, ptr<T>(raw, b), hg, mean, rstd, G, ptr<T>(d_raw, b));
    }
    if (xg) {  // through the input map's layer norm
      T mean, rstd;
      read_stats(*ih_stats, b, mean, rstd);
      row_ln_backward(dz, ptr<T>(x, b), xg, mean, rstd, G, ptr<T>(d_x, b));
    }
  });
}

void lstm_forward_step(const Tensor& x, const OptTensor& ih_gain, const OptTensor& ih_bias,
                       const OptTensor& ih_stats, const OptTensor& raw, const OptTensor& hh_gain,
                       const OptTensor& hh_bias, const Tensor& c_prev, const Tensor& h_prev,
                       const OptTensor& cell_gain, const OptTensor& cell_bias,
                       const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                       Tensor act, Tensor c_new, Tensor c, Tensor tanh_c, Tensor h,
                       const OptTensor& hh_stats, const OptTensor& cell_stats) {
  const auto [B, H] = batch_and_hidden(act, 4, "lstm step");
  const int64_t G = 4 * H;
  for (const Tensor* t : TensorList{&x, &act}) {
    check_rows(*t, B, G, "lstm step", "gate tensors");
  }
  for (const Tensor* t : TensorList{&c_prev, &h_prev, &c_new, &c, &tanh_c, &h}) {
    check_rows(*t, B, H, "lstm step", "state tensors");
  }
  if (raw) check_rows(*raw, B, G, "lstm step", "raw");
  for (const OptTensor* t : {&mask, &keep_c, &keep_h}) {
    if (*t) check_rows(**t, B, H, "lstm step", "mask and keep tensors");
  }
  for (const OptTensor* t : {&ih_gain, &ih_bias, &hh_gain, &hh_bias}) {
    if (*t) check_vector(**t, G, "lstm step", "gate layer norm gains and biases");
  }
  for (const OptTensor* t : {&cell_gain, &cell_bias}) {
    if (*t) check_vector(**t, H, "lstm step", "cell layer norm gain and bias");
  }
  for (const OptTensor* t : {&ih_stats, &hh_stats, &cell_stats}) {
    if (*t) check_stats(**t, B, "lstm step", "layer norm statistics");
  }
  TORCH_CHECK(!raw || (hh_gain && hh_stats), "rnnkit lstm step: raw needs hh_gain and hh_stats");
  TORCH_CHECK(!ih_gain || ih_stats, "rnnkit lstm step: ih_gain needs ih_stats");
  TORCH_CHECK(!cell_gain || cell_stats, "rnnkit lstm step: cell_gain needs cell_stats");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_lstm_forward_step", [&] {
    forward_impl<scalar_t>(x, ih_gain, ih_bias, ih_stats, raw, hh_gain, hh_bias, c_prev, h_prev, cell_gain, cell_bias,
                           mask, keep_c, keep_h, act, c_new, c, tanh_c, h, hh_stats,
                           cell_stats);
  });
}

void lstm_backward_step(const Tensor& dh, const OptTensor& dh_extra, const Tensor& dc,
                        const Tensor& act, const Tensor& tanh_c, const Tensor& c_new,
                        const Tensor& c_prev, const OptTensor& mask, const OptTensor& keep_c,
                        const OptTensor& keep_h, const OptTensor& cell_gain,
                        const OptTensor& cell_stats, const OptTensor& raw,
                        const OptTensor& hh_gain, const OptTensor& hh_stats,
                        const OptTensor& x, const OptTensor& ih_gain, const OptTensor& ih_stats,
                        Tensor d_gates, const OptTensor& d_raw, const OptTensor& d_x,
                        const OptTensor& d_cnorm, const OptTensor& dh_direct, Tensor dc_prev) {
  const auto [B, H] = batch_and_hidden(act, 4, "lstm step");
  const int64_t G = 4 * H;
  for (const Tensor* t : TensorList{&act, &d_gates}) {
    check_rows(*t, B, G, "lstm step", "gate tensors");
  }
  for (const Tensor* t : TensorList{&dh, &dc, &tanh_c, &c_new, &c_prev, &dc_prev}) {
    check_rows(*t, B, H, "lstm step", "state tensors");
  }
  for (const OptTensor* t : {&raw, &d_raw, &x, &d_x}) {
    if (*t) check_rows(**t, B, G, "lstm step", "optional gate tensors");
  }
  for (const OptTensor* t : {&dh_extra, &mask, &keep_c, &keep_h, &d_cnorm, &dh_direct}) {
    if (*t) check_rows(**t, B, H, "lstm step", "optional state tensors");
  }
  for (const OptTensor* t : {&ih_gain, &hh_gain}) {
    if (*t) check_vector(**t, G, "lstm step", "gate layer norm gains");
  }
  if (cell_gain) check_vector(*cell_gain, H, "lstm step", "cell layer norm gain");
  for (const OptTensor* t : {&ih_stats, &hh_stats, &cell_stats}) {
    if (*t) check_stats(**t, B, "lstm step", "layer norm statistics");
  }
  TORCH_CHECK(!hh_gain || (raw && hh_stats && d_raw), "rnnkit lstm step: hh_gain needs raw, "
              "hh_stats and d_raw");
  TORCH_CHECK(!cell_gain || (cell_stats && d_cnorm), "rnnkit lstm step: cell_gain needs "
              "cell_stats and d_cnorm");
  TORCH_CHECK(!keep_h || dh_direct, "rnnkit lstm step: keep_h needs dh_direct");
  TORCH_CHECK(!ih_gain || (x && ih_stats && d_x), "rnnkit lstm step: ih_gain needs x, ih_stats "
              "and d_x");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_lstm_backward_step", [&] {
    backward_impl<scalar_t>(dh, dh_extra, dc, act, tanh_c, c_new, c_prev, mask, keep_c, keep_h,
                            cell_gain, cell_stats, raw, hh_gain, hh_stats, x, ih_gain,
                            ih_stats, d_gates, d_raw, d_x, d_cnorm, dh_direct, dc_prev);
  });
}

}  // namespace

TORCH_LIBRARY(rnnkit, m) {
  m.def(
      "lstm_forward_step(Tensor x, Tensor? ih_gain, Tensor? ih_bias, Tensor(h!)? ih_stats, "
      "Tensor? raw, Tensor? hh_gain, Tensor? hh_bias, "
      "Tensor c_prev, Tensor h_prev, Tensor? cell_gain, Tensor? cell_bias, Tensor? mask, "
      "Tensor? keep_c, Tensor? keep_h, Tensor(a!) act, Tensor(b!) c_new, Tensor(c!) c, "
      "Tensor(d!) tanh_c, Tensor(e!) h, Tensor(f!)? hh_stats, Tensor(g!)? cell_stats) -> ()");
  m.def(
      "lstm_backward_step(Tensor dh, Tensor? dh_extra, Tensor dc, Tensor act, Tensor tanh_c, "
      "Tensor c_new, Tensor c_prev, Tensor? mask, Tensor? keep_c, Tensor? keep_h, "
      "Tensor? cell_gain, Tensor? cell_stats, Tensor? raw, Tensor? hh_gain, Tensor? hh_stats, "
      "Tensor? x, Tensor? ih_gain, Tensor? ih_stats, Tensor(a!) d_gates, Tensor(b!)? d_raw, "
      "Tensor(f!)? d_x, Tensor(c!)? d_cnorm, Tensor(d!)? dh_direct, Tensor(e!) dc_prev) -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward_step", &lstm_forward_step);
  m.impl("lstm_backward_step", &lstm_backward_step);
}
