// Build-time tool: writes the bundled demo catalog (see host/demo_catalog.hpp).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "demo_catalog.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [SECONDS]\n", argv[0]);
    return 1;
  }
  try {
    lathe::write_demo_catalog(argv[1], argc > 2 ? std::atof(argv[2]) : 20.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_demo_catalog: %s\n", e.what());
    return 1;
  }
  return 0;
}
