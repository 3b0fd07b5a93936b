// Device memory: allocations live in one large reserved range of address space (the arena, PROT_NONE, backed by no
// memory) with a wide PROT_NONE gap on each side of every allocation, as wide as the allocation and at least 8 MiB, so
// a kernel that runs off either end, or follows a wild index, faults at once instead of reading host memory or a
// neighbour. Freed memory stays PROT_NONE (quarantined) for a while so a use after free faults too. Device addresses
// are the host addresses of these ranges (the emulated device shares the process's address space), so kernels
// dereference them directly.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "emu.hpp"

namespace emu {
namespace {

constexpr std::size_t kMinimumGap = 8ull << 20;
constexpr std::size_t kArenaBytes = 16ull << 40;   // address space only: PROT_NONE and MAP_NORESERVE
constexpr std::size_t kFallbackGuard = 64 * 1024;  // per-mapping guards when the arena cannot be reserved
constexpr std::size_t kGranule = 256;    // cuMemAlloc's alignment
constexpr unsigned char kCanary = 0xA5;
constexpr std::size_t kQuarantineEntries = 4096;

std::map<uintptr_t, Allocation> g_live;        // by base
std::map<uintptr_t, Allocation> g_quarantine;  // by map start
std::deque<uintptr_t> g_quarantine_order;
std::size_t g_device_bytes = 0;
uint64_t g_serial = 0;

std::size_t page_size() {
    static const std::size_t size = (std::size_t)sysconf(_SC_PAGESIZE);
    return size;
}

std::size_t round_up(std::size_t value, std::size_t to) { return (value + to - 1) / to * to; }

std::size_t data_bytes(const Allocation& a) { return a.map_size - 2 * a.guard; }

uintptr_t data_start(const Allocation& a) { return a.map + a.guard; }

// The arena and the slots taken in it (live or quarantined), start -> end.
uintptr_t g_arena = 0, g_arena_end = 0, g_cursor = 0;
bool g_arena_tried = false;
std::map<uintptr_t, uintptr_t> g_slots;

bool arena() {
    if (!g_arena_tried) {
        g_arena_tried = true;
        void* range = mmap(nullptr, kArenaBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (range != MAP_FAILED) {
            g_arena = g_cursor = (uintptr_t)range;
            g_arena_end = g_arena + kArenaBytes;
        } else {
            fprintf(stderr, "nativemi-emulator: cannot reserve %zu bytes of address space; allocations get %zu-byte guards only\n", kArenaBytes,
                    kFallbackGuard);
        }
    }
    return g_arena != 0;
}

// First fit at or after `from` and below `limit`, or 0.
uintptr_t fit(uintptr_t from, uintptr_t limit, std::size_t bytes) {
    uintptr_t candidate = from;
    auto it = g_slots.upper_bound(candidate);
    if (it != g_slots.begin() && std::prev(it)->second > candidate) candidate = std::prev(it)->second;
    for (;;) {
        if (candidate + bytes > limit || candidate + bytes < candidate) return 0;
        if (it == g_slots.end() || it->first >= candidate + bytes) return candidate;
        candidate = std::max(candidate, it->second);
        ++it;
    }
}

void release_slot(const Allocation& a) {
    if (g_arena != 0 && a.map >= g_arena && a.map < g_arena_end) {
        // Back to reserved, inaccessible address space.
        mmap((void*)a.map, a.map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        g_slots.erase(a.map);
    } else {
        munmap((void*)a.map, a.map_size);
    }
}

const char* kind(const Allocation& a) { return a.host ? "pinned host allocation" : "device allocation"; }

CUresult map_allocation(Allocation& a, std::size_t bytes, const char* call) {
    a.size = bytes;
    a.rounded = round_up(bytes, kGranule);
    std::size_t data = round_up(a.rounded, page_size());
    if (arena()) {
        a.guard = std::max(kMinimumGap, data);
        a.map_size = data + 2 * a.guard;
        uintptr_t slot = fit(g_cursor, g_arena_end, a.map_size);
        if (slot == 0) slot = fit(g_arena, g_arena_end, a.map_size);   // wrap around to slots freed since
        if (slot == 0)
            return fail(CUDA_ERROR_OUT_OF_MEMORY, "%s: the emulator's %zu-byte address-space arena has no room for %zu more bytes", call, kArenaBytes,
                        a.map_size);
        a.map = slot;
        g_cursor = slot + a.map_size;
        g_slots[slot] = slot + a.map_size;
    } else {
        a.guard = kFallbackGuard;
        a.map_size = data + 2 * a.guard;
        void* map = mmap(nullptr, a.map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (map == MAP_FAILED)
            return fail(CUDA_ERROR_OUT_OF_MEMORY, "%s: the host could not map %zu bytes for the emulated allocation", call, a.map_size);
        a.map = (uintptr_t)map;
    }
    if (mprotect((void*)data_start(a), data, PROT_READ | PROT_WRITE) != 0) {
        release_slot(a);
        return fail(CUDA_ERROR_OUT_OF_MEMORY, "%s: the host could not commit %zu bytes for the emulated allocation", call, data);
    }
    // The buffer ends at its granule's end, right before the trailing guard, so an overrun beyond the granule
    // faults; the granule's tail and the unused start of the first page hold a canary checked after every kernel.
    a.base = data_start(a) + data - a.rounded;
    memset((void*)data_start(a), kCanary, a.base - data_start(a));
    // cuMemAlloc does not zero memory; all-ones (the default) is NaN as a float and -1 as an integer.
    memset((void*)a.base, config().fill, bytes);
    memset((void*)(a.base + bytes), kCanary, a.rounded - bytes);
    a.serial = ++g_serial;
    return CUDA_SUCCESS;
}

void quarantine(Allocation a) {
    // The pages go back to the host (MADV_DONTNEED) but the addresses stay reserved and inaccessible.
    madvise((void*)data_start(a), data_bytes(a), MADV_DONTNEED);
    mprotect((void*)data_start(a), data_bytes(a), PROT_NONE);
    g_quarantine[a.map] = a;
    g_quarantine_order.push_back(a.map);
    while (g_quarantine_order.size() > kQuarantineEntries) {
        auto oldest = g_quarantine.find(g_quarantine_order.front());
        g_quarantine_order.pop_front();
        if (oldest == g_quarantine.end()) continue;
        release_slot(oldest->second);
        g_quarantine.erase(oldest);
    }
}

bool canary_intact(const unsigned char* from, std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; i++)
        if (from[i] != kCanary) return false;
    return true;
}

// Live allocations by the start of their slot, to find the one whose guards hold an address.
std::map<uintptr_t, uintptr_t> g_live_by_slot;   // slot start -> base

// Whichever slot (live or quarantined) holds `address`, guards included.
const Allocation* containing_mapping(const std::map<uintptr_t, Allocation>& allocations, uintptr_t address, bool keyed_by_map) {
    if (keyed_by_map) {
        auto it = allocations.upper_bound(address);
        if (it == allocations.begin()) return nullptr;
        const Allocation& a = std::prev(it)->second;
        return address < a.map + a.map_size ? &a : nullptr;
    }
    auto it = g_live_by_slot.upper_bound(address);
    if (it == g_live_by_slot.begin()) return nullptr;
    const Allocation& a = allocations.at(std::prev(it)->second);
    return address < a.map + a.map_size ? &a : nullptr;
}

std::string describe_in(const Allocation& a, uintptr_t address, bool freed) {
    std::string what = format("the %zu-byte %s at 0x%llx", a.size, kind(a), (unsigned long long)a.base);
    if (freed) {
        if (address >= a.base && address < a.base + a.size)
            return format("byte %llu of %s, which was freed (use after free)", (unsigned long long)(address - a.base), what.c_str());
        return format("next to %s, which was freed (use after free or out of bounds)", what.c_str());
    }
    if (address < a.base) return format("%llu bytes before the start of %s", (unsigned long long)(a.base - address), what.c_str());
    if (address >= a.base + a.size)
        return format("%llu bytes past the end of %s (byte %llu of it)", (unsigned long long)(address - (a.base + a.size)), what.c_str(),
                      (unsigned long long)(address - a.base));
    return format("byte %llu of %s", (unsigned long long)(address - a.base), what.c_str());
}

}  // namespace

CUresult device_alloc(uintptr_t* pointer, std::size_t bytes) {
    if (bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAlloc_v2: 0 bytes requested (the driver refuses empty allocations)");
    std::size_t accounted = round_up(round_up(bytes, kGranule), page_size());
    uint64_t total = config().total_memory;
    if (accounted > total || g_device_bytes > total - accounted)
        return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc_v2: %zu bytes requested; %llu of %llu bytes of device memory are free", bytes,
                    (unsigned long long)(total - g_device_bytes), (unsigned long long)total);
    long pages = sysconf(_SC_AVPHYS_PAGES);
    if (pages > 0 && accounted / page_size() > (std::size_t)pages)
        return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc_v2: %zu bytes requested; the emulator keeps device memory in host memory, "
                    "which has only %zu bytes free (the emulated device's own limit was not reached)", bytes, (std::size_t)pages * page_size());
    Allocation a;
    CUresult status = map_allocation(a, bytes, "cuMemAlloc_v2");
    if (status != CUDA_SUCCESS) return status;
    g_device_bytes += accounted;
    g_live[a.base] = a;
    g_live_by_slot[a.map] = a.base;
    *pointer = a.base;
    return CUDA_SUCCESS;
}

CUresult device_free(uintptr_t pointer) {
    if (pointer == 0) return CUDA_SUCCESS;
    auto it = g_live.find(pointer);
    if (it == g_live.end() || it->second.host) {
        if (const Allocation* freed = containing_mapping(g_quarantine, pointer, true))
            return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFree_v2(0x%llx): %s (double free)", (unsigned long long)pointer,
                        describe_in(*freed, pointer, true).c_str());
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFree_v2(0x%llx): not the start of a live device allocation (%s)",
                    (unsigned long long)pointer, describe_address(pointer).c_str());
    }
    Allocation a = it->second;
    CUresult status = CUDA_SUCCESS;
    if (!canary_intact((const unsigned char*)(a.base + a.size), a.rounded - a.size) ||
        !canary_intact((const unsigned char*)data_start(a), a.base - data_start(a)))
        status = fail(CUDA_ERROR_ILLEGAL_ADDRESS, "cuMemFree_v2(0x%llx): something wrote outside the %zu-byte allocation (its guard bytes changed)",
                      (unsigned long long)pointer, a.size);
    g_live.erase(it);
    g_live_by_slot.erase(a.map);
    g_device_bytes -= round_up(a.rounded, page_size());
    quarantine(a);
    return status;
}

CUresult host_alloc(void** pointer, std::size_t bytes) {
    Allocation a;
    a.host = true;
    CUresult status = map_allocation(a, bytes == 0 ? 1 : bytes, "cuMemHostAlloc");
    if (status != CUDA_SUCCESS) return status;
    g_live[a.base] = a;
    g_live_by_slot[a.map] = a.base;
    *pointer = (void*)a.base;
    return CUDA_SUCCESS;
}

CUresult host_free(void* pointer) {
    auto it = g_live.find((uintptr_t)pointer);
    if (it == g_live.end() || !it->second.host)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost(%p): not memory from cuMemHostAlloc (%s)", pointer,
                    describe_address((uintptr_t)pointer).c_str());
    Allocation a = it->second;
    g_live.erase(it);
    g_live_by_slot.erase(a.map);
    quarantine(a);
    return CUDA_SUCCESS;
}

void free_everything() {
    for (auto& [base, a] : g_live) release_slot(a);
    for (auto& [map, a] : g_quarantine) release_slot(a);
    g_live.clear();
    g_live_by_slot.clear();
    g_quarantine.clear();
    g_quarantine_order.clear();
    g_device_bytes = 0;
}

std::size_t device_bytes_in_use() { return g_device_bytes; }

const Allocation* find_allocation(uintptr_t address) {
    auto it = g_live.upper_bound(address);
    if (it == g_live.begin()) return nullptr;
    --it;
    const Allocation& a = it->second;
    return address >= a.base && address < a.base + a.size ? &a : nullptr;
}

std::string describe_address(uintptr_t address) {
    if (const Allocation* a = find_allocation(address)) return describe_in(*a, address, false);
    const Allocation* freed = containing_mapping(g_quarantine, address, true);
    if (freed != nullptr && address >= freed->base && address < freed->base + freed->size) return describe_in(*freed, address, true);
    // Between allocations: say how far it is from the nearest live one on each side (a wild index usually comes
    // from the one below).
    std::string text;
    auto above = g_live.upper_bound(address);
    if (above != g_live.begin()) {
        const Allocation& below = std::prev(above)->second;
        text = describe_in(below, address, false);
    }
    if (above != g_live.end()) text += (text.empty() ? "" : ", and ") + describe_in(above->second, address, false);
    if (freed != nullptr) text += (text.empty() ? "" : "; ") + describe_in(*freed, address, true);
    return text.empty() ? "not in any device allocation, live or recently freed" : "not in any allocation: " + text;
}

CUresult check_device_range(const char* call, const char* what, uintptr_t address, std::size_t bytes) {
    if (bytes == 0) return CUDA_SUCCESS;
    const Allocation* a = find_allocation(address);
    if (a == nullptr || a->host) {
        if (a != nullptr)
            return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s 0x%llx (%zu bytes) is pinned host memory, not device memory", call, what,
                        (unsigned long long)address, bytes);
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s 0x%llx (%zu bytes) is not device memory: the address is %s", call, what,
                    (unsigned long long)address, bytes, describe_address(address).c_str());
    }
    if (bytes > a->base + a->size - address)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s [0x%llx, +%zu bytes) runs %llu bytes past the end of the %zu-byte device allocation at 0x%llx",
                    call, what, (unsigned long long)address, bytes, (unsigned long long)(address + bytes - (a->base + a->size)), a->size,
                    (unsigned long long)a->base);
    return CUDA_SUCCESS;
}

CUresult check_host_range(const char* call, const char* what, const void* address, std::size_t bytes) {
    if (bytes == 0) return CUDA_SUCCESS;
    if (address == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s is a null host pointer (%zu bytes)", call, what, bytes);
    const Allocation* a = find_allocation((uintptr_t)address);
    if (a != nullptr && !a->host)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s %p is a device address (%s); a host pointer is expected", call, what, address,
                    describe_address((uintptr_t)address).c_str());
    if (a != nullptr && bytes > a->base + a->size - (uintptr_t)address)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s [%p, +%zu bytes) runs past the end of the %zu-byte pinned host allocation at 0x%llx", call,
                    what, address, bytes, a->size, (unsigned long long)a->base);
    return CUDA_SUCCESS;
}

CUresult check_canaries(const char* after) {
    for (auto& [base, a] : g_live) {
        const unsigned char* tail = (const unsigned char*)(a.base + a.size);
        if (canary_intact(tail, a.rounded - a.size)) continue;
        std::size_t offset = 0;
        while (tail[offset] == kCanary) offset++;
        return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "%s wrote past the end of the %zu-byte %s at 0x%llx: byte %zu of it (%zu past the end) changed",
                    after, a.size, kind(a), (unsigned long long)a.base, a.size + offset, offset);
    }
    return CUDA_SUCCESS;
}

}  // namespace emu
