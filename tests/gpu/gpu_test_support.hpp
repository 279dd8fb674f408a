#pragma once
// GPU tests run only where a usable CUDA device exists; elsewhere they skip, saying why, so
// ctest reports them as skipped, never as a silent pass.
#include <gtest/gtest.h>

#include "lathe_gpu/device.hpp"

#define LATHE_REQUIRE_GPU()                                                                                            \
  do {                                                                                                                 \
    if (::lathe::gpu::devices().empty()) GTEST_SKIP() << "no usable GPU (" << ::lathe::gpu::no_device_reason() << ")"; \
  } while (0)
