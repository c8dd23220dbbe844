// The fix of the server's C++ `std::string Role::getClassName()`, compiled into
// the patch. It replaces the method through a trampoline written over the
// method's entry, so it must have the method's machine-level signature: a
// std::string is returned through a hidden pointer passed first, and `this`
// comes second, exactly as for a free function taking the object pointer.
#include <string>

class Role;

extern "C" std::string hotfix_demo_role_get_class_name(Role *self) {
    (void)self;
    return "Mage";
}
