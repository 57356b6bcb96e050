// The elementwise part of one GRU step, forward and backward, fused into one pass per row.
//
// rnnkit.fast_loop runs the time loop, the matmuls (W_hh h_{t-1}, d_a W_hh) and the recurrent
// layer norm; these two ops do everything between them that eager PyTorch does in ~8 small ops
// per step (Cho et al. 2014, torch's gate order r, z, n; z is the fraction of h kept):
//
//   r = sigmoid(x_r + a_r),  z = sigmoid(x_z + a_z),  n = tanh(x_n + r * a_n)
//   h' = (1 - z) (n m) + z h_{t-1},   h_t = h' + k (h_{t-1} - h')
//
// with x = W_ih x_t + b_ih (all steps at once, outside), a = W_hh h_{t-1} + b_hh (or its layer
// norm), m the recurrent-dropout mask and k the zoneout keep mask. The math is exactly
// rnnkit.fast_loop._gru_forward_step / _gru_backward_step (the eager version, used when this
// file cannot be compiled, and the reference tests/test_fast_loop.py holds it to).
#include "step_common.h"

#include <initializer_list>

namespace {

using namespace rnnkit_step;

template <typename T>
void forward_impl(const Tensor& x, const Tensor& a, const Tensor& h_prev, const OptTensor& mask,
                  const OptTensor& keep_h, Tensor& act, Tensor& a_n, Tensor& h) {
  const int64_t B = act.size(0), H = act.size(1) / 3;
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *xr = ptr<T>(x, b), *ar = ptr<T>(a, b), *hp = ptr<T>(h_prev, b);
    const T *mk = ptr<T>(mask, b), *kh = ptr<T>(keep_h, b);
    T *z = ptr<T>(act, b), *an = ptr<T>(a_n, b), *hr = ptr<T>(h, b);
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

// dh_carry may be dh itself: each piece of dh is read before that piece is written.
template <typename T>
void backward_impl(const Tensor& dh, const OptTensor& dh_extra, const Tensor& act,
                   const Tensor& a_n, const Tensor& h_prev, const OptTensor& mask,
                   const OptTensor& keep_h, Tensor& d_gates, Tensor& d_a, Tensor& dh_carry) {
  const int64_t B = act.size(0), H = act.size(1) / 3;
  for_rows(B, 3 * H, [&](int64_t b) {
    const T *z = ptr<T>(act, b), *an = ptr<T>(a_n, b), *hp = ptr<T>(h_prev, b);
    const T *mk = ptr<T>(mask, b), *kh = ptr<T>(keep_h, b);
    const T *dhr = ptr<T>(dh, b), *dhx = ptr<T>(dh_extra, b);
    T *dz = ptr<T>(d_gates, b), *da = ptr<T>(d_a, b), *carry = ptr<T>(dh_carry, b);
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

void gru_forward_step(const Tensor& x, const Tensor& a, const Tensor& h_prev,
                      const OptTensor& mask, const OptTensor& keep_h, Tensor act, Tensor a_n,
                      Tensor h) {
  const auto [B, H] = batch_and_hidden(act, 3, "gru step");
  for (const Tensor* t : TensorList{&x, &a, &act}) {
    check_rows(*t, B, 3 * H, "gru step", "gate tensors");
  }
  for (const Tensor* t : TensorList{&h_prev, &a_n, &h}) {
    check_rows(*t, B, H, "gru step", "state tensors");
  }
  for (const OptTensor* t : {&mask, &keep_h}) {
    if (*t) check_rows(**t, B, H, "gru step", "mask and keep tensors");
  }
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_gru_forward_step", [&] {
    forward_impl<scalar_t>(x, a, h_prev, mask, keep_h, act, a_n, h);
  });
}

void gru_backward_step(const Tensor& dh, const OptTensor& dh_extra, const Tensor& act,
                       const Tensor& a_n, const Tensor& h_prev, const OptTensor& mask,
                       const OptTensor& keep_h, Tensor d_gates, Tensor d_a, Tensor dh_carry) {
  const auto [B, H] = batch_and_hidden(act, 3, "gru step");
  for (const Tensor* t : TensorList{&act, &d_gates, &d_a}) {
    check_rows(*t, B, 3 * H, "gru step", "gate tensors");
  }
  for (const Tensor* t : TensorList{&dh, &a_n, &h_prev, &dh_carry}) {
    check_rows(*t, B, H, "gru step", "state tensors");
  }
  for (const OptTensor* t : {&dh_extra, &mask, &keep_h}) {
    if (*t) check_rows(**t, B, H, "gru step", "optional per-step tensors");
  }
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_gru_backward_step", [&] {
    backward_impl<scalar_t>(dh, dh_extra, act, a_n, h_prev, mask, keep_h, d_gates, d_a,
                            dh_carry);
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "gru_forward_step(Tensor x, Tensor a, Tensor h_prev, Tensor? mask, Tensor? keep_h, "
      "Tensor(a!) act, Tensor(b!) a_n, Tensor(c!) h) -> ()");
  m.def(
      "gru_backward_step(Tensor dh, Tensor? dh_extra, Tensor act, Tensor a_n, Tensor h_prev, "
      "Tensor? mask, Tensor? keep_h, Tensor(a!) d_gates, Tensor(b!) d_a, Tensor(c!) dh_carry) "
      "-> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward_step", &gru_forward_step);
  m.impl("gru_backward_step", &gru_backward_step);
}
