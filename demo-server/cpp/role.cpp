// Role::getClassName alone in this translation unit: callers in other units
// cannot inline it, so replacing the function's code reaches every caller.
#include "role.hpp"

// Shipped bug: the class name is "Role"; the fixed one is "Mage".
__attribute__((noinline)) std::string Role::getClassName() {
    return "Role";
}
