#include "lathe/error.hpp"

namespace lathe::detail {
void throw_logic_error(const char* file, int line, const std::string& what) {
  throw logic_error(std::string(file) + ":" + std::to_string(line) + ": " + what);
}
}  // namespace lathe::detail
