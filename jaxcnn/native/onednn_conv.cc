// oneDNN 2-D convolution as XLA FFI handlers: forward, input gradient, kernel gradient.
// Activations NHWC, kernels HWIO, float32 (jaxcnn/functional/conv_onednn.py checks before calling).
// Primitives are created once per geometry and cached. XLA may run two custom calls at
// once on different threads, so every call brings its own scratchpad (oneDNN's default
// library-owned scratchpad is shared between primitives and not safe to use concurrently).
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <memory>
#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {
dnnl::engine& Engine() { static dnnl::engine e(dnnl::engine::kind::cpu, 0); return e; }

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr;
  std::string Key(char kind) const {
    std::string k(1, kind);
    for (int64_t v : {n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr}) { k += ','; k += std::to_string(v); }
    return k;
  }
  memory::desc Src() const { return memory::desc({n, c, h, w}, dt::f32, tag::nhwc); }
  memory::desc Dst() const { return memory::desc({n, o, oh, ow}, dt::f32, tag::nhwc); }
  memory::desc WeiUser() const { return memory::desc({o, c, kh, kw}, dt::f32, tag::hwio); }
  memory::desc WeiAny() const { return memory::desc({o, c, kh, kw}, dt::f32, tag::any); }
  dnnl::convolution_forward::primitive_desc Fwd(dnnl::prop_kind prop) const {
    return dnnl::convolution_forward::primitive_desc(
        Engine(), prop, dnnl::algorithm::convolution_direct, Src(), WeiAny(), Dst(),
        {sh, sw}, {pt, pl}, {pb, pr}, UserScratchpad());
  }
};

struct Cached {
  dnnl::primitive conv;
  memory::desc wei;        // the primitive's weight layout
  bool reorder_needed;
  dnnl::reorder reorder;   // user hwio <-> primitive layout
  memory::desc scratchpad; // per-call workspace of the convolution
  memory::desc reorder_scratchpad;
};

// A weight reorder between two layouts, with a user scratchpad like the convolutions'.
void MakeReorder(Cached* c, const memory::desc& from, const memory::desc& to) {
  c->reorder_needed = from != to;
  if (!c->reorder_needed) return;
  auto pd = dnnl::reorder::primitive_desc(Engine(), from, Engine(), to, UserScratchpad());
  c->reorder = dnnl::reorder(pd);
  c->reorder_scratchpad = pd.scratchpad_desc();
}

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Cached>> cache;

std::shared_ptr<Cached> Get(const Geometry& g, char kind) {
  std::string key = g.Key(kind);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  auto c = std::make_shared<Cached>();
  if (kind == 'f') {
    auto pd = g.Fwd(dnnl::prop_kind::forward_training);
    c->conv = dnnl::convolution_forward(pd);
    c->scratchpad = pd.scratchpad_desc();
    c->wei = pd.weights_desc();
    MakeReorder(c.get(), g.WeiUser(), c->wei);
  } else if (kind == 'd') {
    auto hint = g.Fwd(dnnl::prop_kind::forward_training);
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.WeiAny(), g.Dst(),
        {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr}, hint, UserScratchpad());
    c->conv = dnnl::convolution_backward_data(pd);
    c->scratchpad = pd.scratchpad_desc();
    c->wei = pd.weights_desc();
    MakeReorder(c.get(), g.WeiUser(), c->wei);
  } else {
    auto hint = g.Fwd(dnnl::prop_kind::forward_training);
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.WeiAny(), g.Dst(),
        {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr}, hint, UserScratchpad());
    c->conv = dnnl::convolution_backward_weights(pd);
    c->scratchpad = pd.scratchpad_desc();
    c->wei = pd.diff_weights_desc();
    MakeReorder(c.get(), c->wei, g.WeiUser());
  }
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache.emplace(key, c);
  return c;
}

Geometry Make(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w, ffi::Span<const int64_t> y,
              int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Geometry{x[0], x[1], x[2], x[3], w[0], w[1], w[3], y[1], y[2], sh, sw, pt, pb, pl, pr};
}

ffi::Error Run(char kind, const Geometry& g, void* x, void* w, void* y) {
  try {
    auto c = Get(g, kind);
    dnnl::stream s(Engine());
    memory src(g.Src(), Engine(), x), dst(g.Dst(), Engine(), y), wei_user(g.WeiUser(), Engine(), w);
    memory wei = wei_user;
    if (c->reorder_needed) wei = memory(c->wei, Engine());
    memory scratchpad(c->scratchpad, Engine());
    memory reorder_scratchpad(c->reorder_scratchpad, Engine());
    auto reorder = [&](memory& from, memory& to) {
      c->reorder.execute(s, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                             {DNNL_ARG_SCRATCHPAD, reorder_scratchpad}});
    };
    if (kind == 'f') {
      if (c->reorder_needed) reorder(wei_user, wei);
      c->conv.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else if (kind == 'd') {
      if (c->reorder_needed) reorder(wei_user, wei);
      c->conv.execute(s, {{DNNL_ARG_DIFF_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else {
      c->conv.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_WEIGHTS, wei}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
      if (c->reorder_needed) reorder(wei, wei_user);
    }
    s.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {  // e.g. bad_alloc: never let it cross into XLA
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("jaxcnn oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Fwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y,
               int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('f', g, x.untyped_data(), w.untyped_data(), y->untyped_data());
}
ffi::Error BwdData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx,
                   int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(dx->dimensions(), w.dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('d', g, dx->untyped_data(), w.untyped_data(), dy.untyped_data());
}
ffi::Error BwdWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dw,
                      int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(x.dimensions(), dw->dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr);
  return Run('w', g, x.untyped_data(), dw->untyped_data(), dy.untyped_data());
}
}  // namespace

#define GEOMETRY_ATTRS .Attr<int64_t>("sh").Attr<int64_t>("sw").Attr<int64_t>("pt").Attr<int64_t>("pb").Attr<int64_t>("pl").Attr<int64_t>("pr")
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnConvFwd, Fwd,
    ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnConvBwdData, BwdData,
    ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnConvBwdWeights, BwdWeights,
    ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>() GEOMETRY_ATTRS);
