// Device layer: runs only in CUDA builds; skips, saying why, where no GPU is present.
#include <gtest/gtest.h>

#include "lathe_gpu/device.hpp"

namespace {

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
