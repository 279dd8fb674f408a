#include "backend.hpp"

#include "lathe/error.hpp"
#ifdef LATHE_HAVE_CUDA
#include "lathe_gpu/device.hpp"
#endif

namespace lathe {

bool parse_backend(const std::string& name, backend_kind& out) {
  if (name == "cpu")
    out = backend_kind::cpu;
  else if (name == "gpu")
    out = backend_kind::gpu;
  else if (name == "auto")
    out = backend_kind::automatic;
  else
    return false;
  return true;
}

namespace {
// Why the GPU engine cannot run here, or "" when it can.
std::string gpu_unavailable_reason() {
#ifdef LATHE_HAVE_CUDA
  const auto devs = gpu::devices();
  if (devs.empty()) return gpu::no_device_reason();
  return "";
#else
  return "lathe was built without CUDA (configure with -DLATHE_CUDA=ON and nvcc on PATH)";
#endif
}
}  // namespace

backend_choice choose_backend(backend_kind requested) {
  if (requested == backend_kind::cpu) return {backend_kind::cpu, "CPU engine (requested)"};
  const std::string why = gpu_unavailable_reason();
  if (why.empty()) {
#ifdef LATHE_HAVE_CUDA
    const auto devs = gpu::devices();
    return {backend_kind::gpu, "GPU engine on " + std::to_string(devs.size()) + " device(s): " + devs.front().name,
            requested == backend_kind::gpu};
#endif
  }
  if (requested == backend_kind::gpu) throw config_error("--backend gpu: " + why + "; use --backend cpu or auto");
  return {backend_kind::cpu, "CPU engine (GPU unavailable: " + why + ")"};
}

}  // namespace lathe
