#include "registry.hpp"

#include <map>

namespace cuda_emu {
namespace {

// Function-local so registrations from other translation units' static initialisers find it constructed.
std::map<std::string, KernelEntry>& registry() {
    static std::map<std::string, KernelEntry> entries;
    return entries;
}

}  // namespace

void register_kernel(KernelEntry entry) {
    std::string name = entry.name;
    registry()[name] = std::move(entry);
}

const KernelEntry* find_kernel(const std::string& name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : &it->second;
}

std::string describe(const KernelParam& p) {
    std::string size = std::to_string(p.size) + " bytes";
    switch (p.kind) {
        case ParamKind::Pointer: return "a pointer (" + size + ")";
        case ParamKind::SignedInteger: return "a signed integer (" + size + ")";
        case ParamKind::UnsignedInteger: return "an unsigned integer (" + size + ")";
        case ParamKind::Float: return "a floating-point value (" + size + ")";
        case ParamKind::Other: return "a structure (" + size + ")";
    }
    return size;
}

}  // namespace cuda_emu
