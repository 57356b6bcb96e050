// Row views and layer-norm rows of the sequence kernels.
//
// The step math reads and writes rows of [B, N] matrices. A sequence op gets [T, B, N]
// buffers and moves to step t by pointer arithmetic, so it builds no Tensor per step: it
// hands the row functions a set of Rows.
#pragma once

#include "step_common.h"

#include <algorithm>
#include <cmath>

namespace rnnkit_step {

constexpr double kEps = 1e-5;  // fast_loop.EPS

// Rows of a [B, N] matrix: row b starts at p + b * stride; p is null for an absent tensor.
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t stride = 0;
  T* operator()(int64_t b) const { return p ? p + b * stride : nullptr; }
  explicit operator bool() const { return p != nullptr; }
};

// The rows of a [B, N] tensor (absent when the optional tensor is).
template <typename T>
inline Rows<T> rows(const Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0)};
}

template <typename T>
inline Rows<T> rows(const OptTensor& t) {
  return t ? rows<T>(*t) : Rows<T>{};
}

// The rows of step t of a [T, B, N] tensor (absent when the optional tensor is).
template <typename T>
inline Rows<T> step_rows(const OptTensor& t, int64_t step) {
  if (!t) return {};
  return {t->data_ptr<T>() + step * t->stride(0), t->stride(1)};
}

// Per-row layer-norm statistics: row b's mean at p + b * row, its rstd `second` further on.
template <typename T>
struct StatRows {
  T* p = nullptr;
  int64_t row = 0, second = 0;
  explicit operator bool() const { return p != nullptr; }
  void write(int64_t b, T mean, T rstd) const {
    p[b * row] = mean;
    p[b * row + second] = rstd;
  }
  void read(int64_t b, T& mean, T& rstd) const {
    mean = p[b * row];
    rstd = p[b * row + second];
  }
};

// Step t of statistics [2, T, B].
template <typename T>
inline StatRows<T> step_stat_rows(const OptTensor& t, int64_t step) {
  if (!t) return {};
  return {t->data_ptr<T>() + step * t->stride(1), t->stride(2), t->stride(0)};
}

template <typename T>
inline const T* data(const OptTensor& t) {
  return t ? t->data_ptr<T>() : nullptr;
}

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

// y = LN(x) * gain + bias over one row, handed to emit(j, count, y) piece by piece; the
// statistics go to row b of `stats`.
template <typename T, typename F>
inline void row_layer_norm(const T* x, int64_t n, const T* gain, const T* bias,
                           const StatRows<T>& stats, int64_t b, const F& emit) {
  T mean, rstd;
  row_stats(x, n, mean, rstd);
  stats.write(b, mean, rstd);
  const Vec<T> m(mean), r(rstd);
  vec_loop<T>(n, [&](int64_t j, int64_t c) {
    Vec<T> y = (load(x, j, c) - m) * r * load(gain, j, c);
    emit(j, c, bias ? y + load(bias, j, c) : y);
  });
}

// The input map's layer norm reads no state, so a sequence op applies it in one parallel pass
// over all T * B rows of x [T, B, G] before its time loop (y = LN(x) * gain + bias, the
// statistics to stats [2, T, B]), and takes its backward in one pass after the loop.
template <typename T>
inline void input_layer_norm(const Tensor& x, const T* gain, const T* bias,
                             const OptTensor& stats, const Tensor& y) {
  const int64_t B = x.size(1), G = x.size(2);
  for_rows(x.size(0) * B, G, [&](int64_t r) {
    const int64_t t = r / B, b = r % B;
    T* out = step_rows<T>(y, t)(b);
    row_layer_norm(step_rows<T>(x, t)(b), G, gain, bias, step_stat_rows<T>(stats, t), b,
                   [&](int64_t j, int64_t n, const Vec<T>& v) { store(v, out, j, n); });
  });
}

// dx [T, B, G] of input_layer_norm, given dy (dx and dy may be the same buffer).
template <typename T>
inline void input_layer_norm_backward(const Tensor& dy, const Tensor& x, const T* gain,
                                      const OptTensor& stats, const Tensor& dx) {
  const int64_t B = x.size(1), G = x.size(2);
  for_rows(x.size(0) * B, G, [&](int64_t r) {
    const int64_t t = r / B, b = r % B;
    T mean, rstd;
    step_stat_rows<T>(stats, t).read(b, mean, rstd);
    row_ln_backward(step_rows<T>(dy, t)(b), step_rows<T>(x, t)(b), gain, mean, rstd, G,
                    step_rows<T>(dx, t)(b));
  });
}

// The sequence ops' checks: [T, B, N] buffers with contiguous rows, so that step t's rows
// (step_rows) and the [T * B, N] views of the weight gradient are what they claim.
inline void check_seq(const Tensor& t, int64_t T_, int64_t B, int64_t N, const char* op,
                      const char* name) {
  TORCH_CHECK(t.dim() == 3 && t.size(0) == T_ && t.size(1) == B && t.size(2) == N &&
                  t.is_contiguous(),
              "rnnkit ", op, ": ", name, " must be a contiguous [", T_, ", ", B, ", ", N,
              "], got sizes ", t.sizes(), " strides ", t.strides());
}

inline void check_seq_stats(const Tensor& t, int64_t T_, int64_t B, const char* op,
                            const char* name) {
  TORCH_CHECK(t.dim() == 3 && t.size(0) == 2 && t.size(1) == T_ && t.size(2) == B, "rnnkit ",
              op, ": ", name, " must be [2, ", T_, ", ", B, "], got sizes ", t.sizes());
}

inline void check_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name) {
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "rnnkit ", op, ": ", name, " is ",
              t.scalar_type(), " but the gates are ", like.scalar_type());
}

// check_dtype of each tensor given (of each optional one that is present).
inline void check_dtypes(TensorList ts, const Tensor& like, const char* op, const char* name) {
  for (const Tensor* t : ts) check_dtype(*t, like, op, name);
}

inline void check_dtypes(std::initializer_list<const OptTensor*> ts, const Tensor& like,
                         const char* op, const char* name) {
  for (const OptTensor* t : ts) {
    if (*t) check_dtype(**t, like, op, name);
  }
}

// A sequence op's reset_rows: bool [T, B], the rows that restart before each step.
inline void check_reset_rows(const Tensor& reset_rows, int64_t T_, int64_t B, const char* op) {
  TORCH_CHECK(reset_rows.scalar_type() == at::kBool && reset_rows.dim() == 2 &&
                  reset_rows.size(0) == T_ && reset_rows.size(1) == B,
              "rnnkit ", op, ": reset_rows must be bool [", T_, ", ", B, "], got ",
              reset_rows.scalar_type(), " ", reset_rows.sizes());
}

// A backward's recurrent weight and the gradient it writes: both [G, H].
inline void check_weights(const Tensor& weight_hh, const Tensor& d_weight, int64_t G, int64_t H,
                          const char* op) {
  for (const Tensor* t : {&weight_hh, &d_weight}) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == G && t->size(1) == H, "rnnkit ", op, ": ",
                t == &weight_hh ? "weight_hh" : "d_weight", " must be [", G, ", ", H,
                "], got sizes ", t->sizes());
  }
}

// Step t's rows of a [T, B] bool reset mask: whether any row restarts before step t.
inline bool any_reset(const OptTensor& reset, int64_t step) {
  if (!reset) return false;
  const bool* r = reset->data_ptr<bool>() + step * reset->stride(0);
  const int64_t B = reset->size(1), s = reset->stride(1);
  for (int64_t b = 0; b < B; ++b) {
    if (r[b * s]) return true;
  }
  return false;
}

inline bool reset_row(const Tensor& reset, int64_t step, int64_t b) {
  return reset.data_ptr<bool>()[step * reset.stride(0) + b * reset.stride(1)];
}

// out = where(reset[step], init, state), row by row ([B, H] each, contiguous rows).
template <typename T>
inline void restart_rows(const Tensor& reset, int64_t step, const Tensor& init,
                         const Tensor& state, Tensor& out) {
  const int64_t B = out.size(0), H = out.size(1);
  for (int64_t b = 0; b < B; ++b) {
    const T* src = reset_row(reset, step, b) ? init.data_ptr<T>() + b * init.stride(0)
                                             : state.data_ptr<T>() + b * state.stride(0);
    std::copy(src, src + H, out.data_ptr<T>() + b * out.stride(0));
  }
}

// The state a step starts from: states[step] ([T + 1, B, H]), or, where rows restart before
// it, those rows of init with the others, copied into `restart` (a [B, H] buffer).
template <typename T>
inline Tensor state_before(const OptTensor& reset_rows, int64_t step, const OptTensor& init,
                           const Tensor& states, Tensor& restart) {
  const Tensor state = states[step];
  if (!any_reset(reset_rows, step)) return state;
  restart_rows<T>(*reset_rows, step, *init, state, restart);
  return restart;
}

// The rows of `grad` that restart at `step` move into `init_grad` (added) and leave zeros:
// their gradient flows to the initial state, not to the step before.
template <typename T>
inline void route_restart_grad(const Tensor& reset, int64_t step, const Tensor& grad,
                               const Tensor& init_grad) {
  const int64_t B = grad.size(0), H = grad.size(1);
  for (int64_t b = 0; b < B; ++b) {
    if (!reset_row(reset, step, b)) continue;
    T* g = grad.data_ptr<T>() + b * grad.stride(0);
    T* ig = init_grad.data_ptr<T>() + b * init_grad.stride(0);
    for (int64_t j = 0; j < H; ++j) ig[j] += g[j];
    std::fill(g, g + H, T(0));
  }
}

// dL/dW_hh = sum_t d_pre_t^T h_{t-1} as one matmul over [T * B] rows; hs [T + 1, B, H] holds
// the states before each step except where rows restarted, which are corrected here.
template <typename T>
inline void recurrent_weight_grad(const Tensor& d_pre, const Tensor& hs, const OptTensor& reset,
                                  const OptTensor& h_init, Tensor& d_weight) {
  const int64_t T_ = d_pre.size(0), B = d_pre.size(1), G = d_pre.size(2), H = hs.size(2);
  at::mm_out(d_weight, d_pre.view({T_ * B, G}).t(), hs.narrow(0, 0, T_).view({T_ * B, H}));
  if (!reset) return;
  Tensor diff;
  for (int64_t t = 0; t < T_; ++t) {
    if (!any_reset(reset, t)) continue;
    if (!diff.defined()) diff = at::empty({B, H}, hs.options());
    const Tensor h_prev = hs[t];
    for (int64_t b = 0; b < B; ++b) {
      T* out = diff.data_ptr<T>() + b * H;
      const T* p = h_prev.data_ptr<T>() + b * H;
      if (reset_row(*reset, t, b)) {
        const T* i = h_init->data_ptr<T>() + b * h_init->stride(0);
        for (int64_t j = 0; j < H; ++j) out[j] = i[j] - p[j];
      } else {
        std::fill(out, out + H, T(0));
      }
    }
    d_weight.addmm_(d_pre[t].t(), diff);
  }
}

// What both cells' backward sequence ops do besides their step rows: at every step the
// restarted rows' state gradients move to the initial state's, and after the time loop come
// dL/dW_hh and the input map's layer-norm backward. Holds the ops' own arguments, in their
// order.
template <typename T>
struct BackwardBookkeeping {
  const OptTensor& ih_gain;
  const OptTensor& reset_rows;
  const OptTensor& h_init;
  const Tensor& h;  // the forward's states [T + 1, B, H]
  const OptTensor& ih_stats;
  const OptTensor& raw_ih;  // with ih_gain: the input map before its layer norm
  const Tensor& d_gates;    // dL/d(the gates' preactivations), [T, B, G]
  const OptTensor& d_x;     // with ih_gain: dL/d(raw_ih)
  Tensor& d_weight;

  // Rows that restart before `step` hand their state gradient (dh, or the LSTM's dc) to the
  // initial state's (d_h_init, d_c_init), and pass none to the step before.
  void route_restarts(int64_t step, const Tensor& grad, const OptTensor& init_grad) const {
    if (any_reset(reset_rows, step)) route_restart_grad<T>(*reset_rows, step, grad, *init_grad);
  }

  // After the time loop, given every step's dL/d(W_hh h_{t-1}).
  void finish(const Tensor& d_pre) const {
    recurrent_weight_grad<T>(d_pre, h, reset_rows, h_init, d_weight);
    if (ih_gain) input_layer_norm_backward<T>(d_gates, *raw_ih, data<T>(ih_gain), ih_stats, *d_x);
  }
};

}  // namespace rnnkit_step
