#pragma once
// Which engine renders: the CPU reference chain or the CUDA engine.
#include <string>

namespace lathe {

enum class backend_kind { cpu, gpu, automatic };

bool parse_backend(const std::string& name, backend_kind& out);

struct backend_choice {
  backend_kind kind = backend_kind::cpu;  ///< cpu or gpu, never automatic
  std::string reason;                     ///< one line for the log: why this engine
  /// --backend gpu: a GPU failure fails the track instead of rendering it on the CPU, so a run
  /// can demand the GPU. Masters the GPU path does not cover are still rendered on the CPU and
  /// say so in the report (chain.backend_note).
  bool strict = false;
};

/// Resolves --backend. `gpu` throws config_error when it cannot run (not built with CUDA, no
/// device, or the GPU engine missing from this version); `automatic` falls back to the CPU and
/// says why.
backend_choice choose_backend(backend_kind requested);

}  // namespace lathe
