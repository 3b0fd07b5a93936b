// The CPU builds of the kernels, found by name. Each generated wrapper (cmake/KernelWrapper.cpp.in) includes one
// kernels/*.cu file and registers every `extern "C" __global__ void NAME(` in it; the signature comes from template
// deduction on the function itself, so the parameter list checked against the PTX is the one that really runs.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cuda_emu {

enum class ParamKind { Pointer, SignedInteger, UnsignedInteger, Float, Other };

struct KernelParam {
    ParamKind kind;
    std::size_t size;
    // For pointers: the pointee's alignment (1 for void), so a misaligned device pointer is refused at launch.
    std::size_t pointee_alignment;
};

using KernelInvoker = void (*)(void** kernel_params);

struct KernelEntry {
    const char* name;
    const char* source;
    std::vector<KernelParam> params;
    KernelInvoker invoke;
};

void register_kernel(KernelEntry entry);
const KernelEntry* find_kernel(const std::string& name);
std::string describe(const KernelParam& param);

template <typename T>
KernelParam describe_param() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) {
        using Pointee = std::remove_cv_t<std::remove_pointer_t<U>>;
        std::size_t alignment = 1;
        if constexpr (!std::is_void_v<Pointee>) alignment = alignof(Pointee);
        return {ParamKind::Pointer, sizeof(U), alignment};
    } else if constexpr (std::is_floating_point_v<U>) {
        return {ParamKind::Float, sizeof(U), 0};
    } else if constexpr (std::is_integral_v<U> || std::is_enum_v<U>) {
        return {std::is_signed_v<U> ? ParamKind::SignedInteger : ParamKind::UnsignedInteger, sizeof(U), 0};
    } else {
        static_assert(std::is_trivially_copyable_v<U>, "kernel parameters are copied bytewise");
        return {ParamKind::Other, sizeof(U), 0};
    }
}

template <typename Signature>
struct KernelTraits;

template <typename... Args>
struct KernelTraits<void (*)(Args...)> {
    static std::vector<KernelParam> params() { return {describe_param<Args>()...}; }

    template <void (*Kernel)(Args...)>
    static void invoke(void** kernel_params) {
        call<Kernel>(kernel_params, std::index_sequence_for<Args...>{});
    }

    template <void (*Kernel)(Args...), std::size_t... I>
    static void call(void** kernel_params, std::index_sequence<I...>) {
        // kernel_params[I] points at the launch's private copy of parameter I, as cuLaunchKernel defines it.
        Kernel(*static_cast<std::remove_cv_t<Args>*>(kernel_params[I])...);
        (void)kernel_params;
    }
};

struct Registration {
    Registration(KernelEntry entry) { register_kernel(std::move(entry)); }
};

}  // namespace cuda_emu

#define NATIVEMI_EMU_REGISTER(name)                                                                              \
    static ::cuda_emu::Registration nativemi_emu_registration_##name(::cuda_emu::KernelEntry{                    \
        #name, NATIVEMI_EMU_KERNEL_SOURCE, ::cuda_emu::KernelTraits<decltype(&name)>::params(),                   \
        &::cuda_emu::KernelTraits<decltype(&name)>::template invoke<&name>});
