// The C++ component of demo-server: a game role.
#pragma once

#include <string>

class Role {
public:
    // The name of the role's class. Defined in role.cpp, its own translation
    // unit, so callers in other units always reach it through a real call.
    std::string getClassName();
};
