#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace emu {

struct PtxParam {
    std::string type;        // ".u64", ".f32", ".b8" (for byte arrays)
    std::size_t size = 0;    // bytes
    std::string declaration; // as written, for messages
};

struct PtxEntry {
    std::string name;
    std::vector<PtxParam> params;
    std::size_t static_shared = 0;   // bytes of .shared the entry declares or references (not the extern, dynamic part)
    // Whether the body holds a barrier, warp collective or call (which might hold one); without, every thread
    // of a block can simply run to completion in turn.
    bool synchronizes = false;
};

struct PtxModule {
    int version_major = 0, version_minor = 0;
    std::string target;   // "sm_90"
    int target_sm = 0;    // 90
    bool arch_specific = false;   // sm_90a
    int address_size = 0;
    std::vector<PtxEntry> entries;
};

// Reads what the emulator needs from PTX text: the header directives, each .entry with its .param list, and the
// static .shared variables each entry declares or uses. Returns false with `error` set on text that is not PTX.
bool parse_ptx(const std::string& text, PtxModule& module, std::string& error);

}  // namespace emu
