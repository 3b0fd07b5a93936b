#pragma once

#include <string>
#include <vector>

#include "../include/cuda_emu.h"
#include "emu.hpp"
#include "registry.hpp"

namespace emu {

struct KernelLaunch {
    const cuda_emu::KernelEntry* kernel = nullptr;
    dim3 grid{1, 1, 1};
    dim3 block{1, 1, 1};
    unsigned int dynamic_shared = 0;
    // The PTX has no barrier or collective: each thread runs to completion on the launching thread, no fibers.
    bool fiberless = false;
    // The launch's private copies of the parameters (cuLaunchKernel copies them at the call), one offset each.
    std::vector<unsigned char> param_bytes;
    std::vector<std::size_t> param_offsets;
};

}  // namespace emu
