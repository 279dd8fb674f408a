// Device layer: runs only in CUDA builds; skips, saying why, where no GPU is present.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "lathe_gpu/device.hpp"
#include "lathe_gpu/memory.hpp"

namespace {

// An upload reads its host memory after the call returns, so a temporary vector (dead by then)
// is refused at compile time while a living one is taken.
template <class V>
concept uploadable = requires(lathe::gpu::device_vector<float>& d, const lathe::gpu::stream& s, V&& v) {
  d.upload_async(std::forward<V>(v), s);
};
static_assert(!uploadable<std::vector<float>>);
static_assert(uploadable<const std::vector<float>&>);
static_assert(uploadable<std::vector<float>&>);

TEST(GpuDevice, ListsDevicesOrSaysWhyNone) {
  const auto devs = lathe::gpu::devices();
  if (devs.empty()) GTEST_SKIP() << "no usable GPU: " << lathe::gpu::no_device_reason();
  for (const auto& d : devs) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.memory_bytes, 0u);
    EXPECT_GE(d.sm_major, 8) << "lathe targets sm_80 and newer";
  }
}

}  // namespace
