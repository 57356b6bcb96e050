// Vector helpers shared by the fused step kernels (lstm_step.cpp, gru_step.cpp): the
// activations, row pointers, the row-parallel loop and the size checks. Header-only.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

namespace rnnkit_step {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using TensorList = std::initializer_list<const Tensor*>;  // inputs and outputs alike
template <typename T>
using Vec = at::vec::Vectorized<T>;

// f(j, count) over [0, n) in vector-sized pieces; count < Vec::size() only for the tail.
template <typename T, typename F>
inline void vec_loop(int64_t n, const F& f) {
  constexpr int64_t W = Vec<T>::size();
  int64_t j = 0;
  for (; j + W <= n; j += W) f(j, W);
  if (j < n) f(j, n - j);
}

template <typename T>
inline Vec<T> load(const T* p, int64_t j, int64_t count) {
  return count == Vec<T>::size() ? Vec<T>::loadu(p + j) : Vec<T>::loadu(p + j, count);
}

template <typename T>
inline void store(const Vec<T>& v, T* p, int64_t j, int64_t count) {
  v.store(p + j, static_cast<int>(count));
}

template <typename T>
inline T sum_lanes(const Vec<T>& v) {
  T lanes[Vec<T>::size()];
  v.store(lanes);
  T s = 0;
  for (int64_t k = 0; k < Vec<T>::size(); ++k) s += lanes[k];
  return s;
}

// Keep the first `count` lanes of v and zero the rest (tails of reductions).
template <typename T>
inline Vec<T> head(const Vec<T>& v, int64_t count) {
  return count == Vec<T>::size() ? v : Vec<T>::set(Vec<T>(0), v, count);
}

// exp_u20 (ATen >= 2.3) is a polynomial exp within 20 ulp, about 3x faster than Sleef's
// exp_u10 for float; for double it is exp itself. A sigmoid error of ~1e-6 is far below
// float32 training noise, and float64 (gradcheck) keeps the exact exp.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
// exp_u20 clamps x to [ln FLT_MIN, ln FLT_MAX] before its polynomial, which turns NaN into a
// finite number and +inf into ~FLT_MAX (so sigmoid(-inf) came out 3e-39, not 0). Two selects
// restore exp's NaN and overflow on the whole vector, without a branch per element.
template <typename T>
inline Vec<T> fast_exp(const Vec<T>& x) {
  // ln(2^max_exponent): above it exp overflows to inf (for float 88.72, for double 709.78).
  constexpr T overflow = std::numeric_limits<T>::max_exponent * T(0.69314718055994531);
  const Vec<T> y = Vec<T>::blendv(x.exp_u20(), Vec<T>(std::numeric_limits<T>::infinity()),
                                  x > Vec<T>(overflow));
  return Vec<T>::blendv(y, x, x.isnan());
}
#else
template <typename T>
inline Vec<T> fast_exp(const Vec<T>& x) { return x.exp(); }
#endif

template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  return Vec<T>(1) / (Vec<T>(1) + fast_exp(x.neg()));
}

// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~2e-7 in float, like the sigmoid's.
template <typename T>
inline Vec<T> fast_tanh(const Vec<T>& x) {
  return Vec<T>(2) / (Vec<T>(1) + fast_exp(x * Vec<T>(-2))) - Vec<T>(1);
}

// Row b of a [B, N] tensor (nullptr for an absent optional one).
template <typename T>
inline T* ptr(const Tensor& t, int64_t b) {
  return t.data_ptr<T>() + b * t.stride(0);
}

template <typename T>
inline T* ptr(const OptTensor& t, int64_t b) {
  return t ? ptr<T>(*t, b) : nullptr;
}

template <typename F>
void for_rows(int64_t B, int64_t row_elements, const F& f) {
  // Two threads only pay off when each gets a few thousand elements.
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(row_elements, 1));
  at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) f(b);
  });
}

// The kernels index raw pointers, so every size is checked before any is read: a tensor
// smaller than expected would be read (or written) past its end.

// A per-step tensor: [rows, cols] with a contiguous last dimension.
inline void check_rows(const Tensor& t, int64_t rows, int64_t cols, const char* op,
                       const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == cols && t.stride(1) == 1,
              "rnnkit ", op, ": ", name, " must be [", rows, ", ", cols,
              "] with a contiguous last dimension, got sizes ", t.sizes(), " strides ",
              t.strides());
}

// A layer norm's gain or bias: n contiguous elements.
inline void check_vector(const Tensor& t, int64_t n, const char* op, const char* name) {
  TORCH_CHECK(t.numel() == n && t.is_contiguous(), "rnnkit ", op, ": ", name, " must be ", n,
              " contiguous elements, got sizes ", t.sizes());
}

// The per-step recurrent matmul of a sequence op, out [B, N] = a [B, K] @ w [K, N] (plus
// `add`, or accumulated into out), in one parallel region: thread k multiplies by its own
// contiguous column block of w with a one-thread GEMM and writes its columns of out. At the
// few rows of one step (the batch), MKL's own multi-thread GEMM scales poorly: 200 steps of
// [32, 512] @ [512, 2048] take 86-91 ms this way on 2 threads and 103-112 ms through
// at::mm (issue 18's GEMM probe). Each output element is one block's dot product, as in at::mm.
class StepMatmul {
 public:
  explicit StepMatmul(const Tensor& w) {
    const int64_t N = w.size(1), threads = at::get_num_threads();
    // blocks narrower than 256 columns lose to MKL's own threads (LSTM H=256's backward)
    const int64_t k = std::max<int64_t>(1, std::min<int64_t>(threads, N / 256));
    for (int64_t i = 0, start = 0; i < k; ++i) {
      const int64_t len = N / k + (i < N % k);
      starts_.push_back(start);
      blocks_.push_back(k == 1 ? w : w.narrow(1, start, len).contiguous());
      start += len;
    }
  }

  enum class Mode { kSet, kAdd, kAccumulate };

  // out = a @ w (kSet), add + a @ w (kAdd; add broadcasts over rows like addmm's), or
  // out += a @ w (kAccumulate).
  void operator()(Tensor out, const Tensor& a, Mode mode = Mode::kSet,
                  const Tensor* add = nullptr) const {
    const int64_t nb = static_cast<int64_t>(blocks_.size());
    auto one = [&](int64_t i) {
      Tensor o = nb == 1 ? out : out.narrow(1, starts_[i], blocks_[i].size(1));
      if (mode == Mode::kSet) {
        at::mm_out(o, a, blocks_[i]);
      } else if (mode == Mode::kAccumulate) {
        o.addmm_(a, blocks_[i]);
      } else {
        const Tensor b = nb == 1 ? *add : add->narrow(-1, starts_[i], blocks_[i].size(1));
        at::addmm_out(o, b, a, blocks_[i]);
      }
    };
    if (nb == 1) {
      one(0);
      return;
    }
    at::parallel_for(0, nb, 1, [&](int64_t begin, int64_t end) {
      // worker threads start with grad mode on, and the ops are called with tensors that
      // require grad (their autograd Function runs them with it off on the caller's thread)
      at::NoGradGuard no_grad;
      for (int64_t i = begin; i < end; ++i) one(i);
    });
  }

 private:
  std::vector<Tensor> blocks_;  // w itself when there is one block
  std::vector<int64_t> starts_;
};

}  // namespace rnnkit_step
