// The C ABI the Rust side calls: no C++ type or exception crosses it.
#include <cstddef>
#include <cstring>
#include <string>

#include "role.hpp"

// Writes up to `cap` bytes of the class name to `buf` (not NUL-terminated) and
// returns the name's full length, or SIZE_MAX if the C++ side threw. `buf` may
// be null when `cap` is 0.
extern "C" size_t demo_role_class_name(char* buf, size_t cap) noexcept {
    try {
        Role role;
        const std::string name = role.getClassName();
        const size_t n = name.size() < cap ? name.size() : cap;
        if (n > 0) {
            std::memcpy(buf, name.data(), n);
        }
        return name.size();
    } catch (...) {
        return static_cast<size_t>(-1);
    }
}
