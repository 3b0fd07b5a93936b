// Kernel execution: the blocks of a grid run one after another on the calling thread, and the threads of a block run
// as fibers (Boost.Context's fcontext: a switch is a few register moves, no system call). A fiber runs until it
// finishes or reaches a barrier or a warp collective; the scheduler then resumes the next ready fiber. A barrier
// releases when every thread of the block has arrived, a collective when every lane its mask names has, so code
// that relies on an unsynchronised order (or on a thread that never arrives) fails here as it may on a GPU.
#include <boost/context/detail/fcontext.hpp>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "executor.hpp"

namespace cuda_emu {
const uint3* g_thread_idx = nullptr;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim{1, 1, 1};
dim3 g_grid_dim{1, 1, 1};
}  // namespace cuda_emu

extern "C" {
// Bounds of the section holding every kernel's static shared memory (see __shared__ in cuda_emu.h).
extern char __start_nativemi_emu_shared[] __attribute__((weak));
extern char __stop_nativemi_emu_shared[] __attribute__((weak));
}

namespace emu {
namespace {

namespace fc = boost::context::detail;

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr std::size_t kMaxDynamicShared = 227 * 1024;

enum class FiberState : unsigned char { Ready, Barrier, Warp, Done };

struct Fiber {
    fc::fcontext_t context;
    uint3 index;
    unsigned int linear;
    FiberState state;
};

struct Warp {
    unsigned int present;   // lanes that exist (a partial last warp has fewer than 32)
    unsigned int exited;
    unsigned int arrived;   // lanes waiting in the current collective
    unsigned int mask;
    cuda_emu::WarpOp op;
    int width;
    uint64_t value[32];
    int argument[32];
    uint64_t result[32];
};

struct Stack {
    char* base;   // lowest address; its first page is a PROT_NONE guard
    std::size_t size;
};

// State of the running launch. Globals rather than locals: the fault handler reads them, and after a siglongjmp
// only globals are certain to hold their last values.
const KernelLaunch* g_launch = nullptr;
std::vector<void*> g_param_pointers;
std::vector<Fiber> g_fibers;
std::vector<Warp> g_warps;
std::vector<Stack> g_stacks;
Fiber* volatile g_current = nullptr;
Fiber g_scheduler;   // the scheduler's context while the block's fibers run
bool g_reverse = false;
unsigned int g_thread_count = 0;
unsigned int g_done = 0;
unsigned int g_barrier_arrived = 0;
int g_barrier_count = 0;
int g_barrier_result = 0;
int g_first_exited = -1;
bool g_failed = false;
CUresult g_failure_code = CUDA_SUCCESS;
char g_failure[2048];
unsigned char* g_dynamic_region = nullptr;   // kMaxDynamicShared bytes, then a guard page
void* g_dynamic_pointer = nullptr;

// Fault handling.
struct sigaction g_previous_segv, g_previous_bus, g_previous_fpe;
sigjmp_buf g_fault_jump;
volatile sig_atomic_t g_guard_active = 0;
pthread_t g_guard_thread;
void* volatile g_fault_address = nullptr;
volatile int g_fault_signal = 0;
volatile int g_fault_code = 0;

std::string thread_name(const Fiber& f) {
    return format("thread (%u,%u,%u)", f.index.x, f.index.y, f.index.z);
}

std::string launch_name() {
    const uint3& b = cuda_emu::g_block_idx;
    return format("kernel %s, block (%u,%u,%u)", g_launch->kernel->name, b.x, b.y, b.z);
}

std::size_t page_size() {
    static const std::size_t size = (std::size_t)sysconf(_SC_PAGESIZE);
    return size;
}

// The next ready fiber after `from` in the run order (ascending, or descending with NATIVEMI_EMU_REVERSE), or null.
// The lanes of the caller's own warp come first: a warp then runs through its shuffles while its lanes' stacks are
// still in the cache, rather than after every other fiber of the block has run.
Fiber* next_ready(const Fiber* from) {
    unsigned int n = g_thread_count, i = from->linear;
    unsigned int warp_start = i & ~31u, lanes = n - warp_start < 32 ? n - warp_start : 32, lane = i - warp_start;
    for (unsigned int k = 1; k < lanes; k++) {
        unsigned int l = g_reverse ? (lane >= k ? lane - k : lane + lanes - k) : (lane + k < lanes ? lane + k : lane + k - lanes);
        if (g_fibers[warp_start + l].state == FiberState::Ready) return &g_fibers[warp_start + l];
    }
    for (unsigned int k = 1; k <= n; k++) {
        unsigned int j = g_reverse ? (i >= k ? i - k : i + n - k) : (i + k < n ? i + k : i + k - n);
        if (g_fibers[j].state == FiberState::Ready) return &g_fibers[j];
    }
    return nullptr;
}

// Suspends the running fiber and resumes `to` directly (the scheduler when null: the block is done, failed or
// deadlocked), so a barrier or collective costs one switch per thread rather than two through the scheduler.
// Whoever resumes a fiber stores the suspended fiber's context into that fiber's slot.
void switch_to(Fiber* to) {
    Fiber* self = g_current;
    if (to == nullptr) to = &g_scheduler;
    g_current = to;
    cuda_emu::g_thread_idx = &to->index;
    fc::transfer_t back = fc::jump_fcontext(to->context, self);
    static_cast<Fiber*>(back.data)->context = back.fctx;
}

void wait_here() { switch_to(next_ready(g_current)); }

// Ends the block with an error; the failing fiber is never resumed (its stack is simply reused).
[[noreturn]] void fail_in_fiber(CUresult code, const std::string& message) {
    g_failed = true;
    g_failure_code = code;
    snprintf(g_failure, sizeof g_failure, "%s, %s: %s", launch_name().c_str(), thread_name(*g_current).c_str(), message.c_str());
    g_current->state = FiberState::Done;
    // Without fibers the thread runs on the launcher's stack: leave through the launcher's jump buffer.
    if (g_launch->fiberless) siglongjmp(g_fault_jump, 2);
    switch_to(nullptr);
    __builtin_unreachable();
}

// The C++ build synchronises although the PTX of the kernel has no barrier or collective instruction: the two
// builds do not match (or the PTX scan missed an instruction), and without fibers the emulator cannot wait.
[[noreturn]] __attribute__((noinline, cold)) void fiberless_sync_error(const char* what) {
    fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("reached %s, but the kernel's PTX has no barrier or warp collective, so the emulator ran "
                                                   "it without fibers; the CPU build and the PTX disagree", what));
}

const char* op_name(cuda_emu::WarpOp op) {
    switch (op) {
        case cuda_emu::ShuffleIndex: return "__shfl_sync";
        case cuda_emu::ShuffleUp: return "__shfl_up_sync";
        case cuda_emu::ShuffleDown: return "__shfl_down_sync";
        case cuda_emu::ShuffleXor: return "__shfl_xor_sync";
        case cuda_emu::Ballot: return "__ballot_sync";
        case cuda_emu::All: return "__all_sync";
        case cuda_emu::Any: return "__any_sync";
        case cuda_emu::SyncWarp: return "__syncwarp";
    }
    return "a warp collective";
}

std::string lanes(unsigned int mask) {
    std::string text;
    int shown = 0;
    for (int lane = 0; lane < 32; lane++) {
        if (!(mask >> lane & 1u)) continue;
        if (shown == 8) return text + ", ...";
        text += (shown++ ? ", " : "") + std::to_string(lane);
    }
    return text;
}

void on_thread_exit() {
    Fiber& f = *g_current;
    Warp& w = g_warps[f.linear / 32];
    unsigned int bit = 1u << (f.linear % 32);
    w.exited |= bit;
    if (w.arrived != 0 && (w.mask & bit))
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("exited while lanes %s of its warp wait for it at %s (mask 0x%08x)",
                                                       lanes(w.arrived).c_str(), op_name(w.op), w.mask));
    if (g_barrier_arrived != 0)
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("exited while %u other threads of the block wait at __syncthreads "
                                                       "(a barrier must be reached by every thread of the block)", g_barrier_arrived));
    if (g_first_exited < 0) g_first_exited = (int)f.linear;
    f.state = FiberState::Done;
    g_done++;
}

void fiber_main(fc::transfer_t from) {
    static_cast<Fiber*>(from.data)->context = from.fctx;
    g_launch->kernel->invoke(g_param_pointers.data());
    on_thread_exit();
    switch_to(next_ready(g_current));
    __builtin_unreachable();
}

Stack& stack_for(unsigned int index) {
    while (g_stacks.size() <= index) {
        std::size_t page = page_size();
        void* memory = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (memory == MAP_FAILED) {
            fprintf(stderr, "nativemi-emulator: cannot map a fiber stack\n");
            abort();
        }
        mprotect(memory, page, PROT_NONE);
        g_stacks.push_back({(char*)memory, kStackBytes});
    }
    return g_stacks[index];
}

bool in_stack_guard(uintptr_t address) {
    std::size_t page = page_size();
    for (const Stack& s : g_stacks)
        if (address >= (uintptr_t)s.base && address < (uintptr_t)s.base + page) return true;
    return false;
}

std::string deadlock_message() {
    unsigned int at_barrier = 0, at_warp = 0;
    const Fiber* first_barrier = nullptr;
    const Fiber* first_warp = nullptr;
    for (const Fiber& f : g_fibers) {
        if (f.state == FiberState::Barrier && at_barrier++ == 0) first_barrier = &f;
        if (f.state == FiberState::Warp && at_warp++ == 0) first_warp = &f;
    }
    std::string text = format("%s: deadlock: %u of %u threads wait at __syncthreads, %u at warp collectives", launch_name().c_str(),
                              at_barrier, g_thread_count, at_warp);
    if (first_barrier) text += format("; %s waits at __syncthreads", thread_name(*first_barrier).c_str());
    if (first_warp) {
        const Warp& w = g_warps[first_warp->linear / 32];
        text += format("; %s waits at %s (mask 0x%08x) for lanes %s of warp %u", thread_name(*first_warp).c_str(), op_name(w.op), w.mask,
                       lanes(w.mask & ~w.arrived).c_str(), first_warp->linear / 32);
    }
    return text;
}

// A block whose kernel never synchronises: its threads run to completion one after another, no fibers needed.
void run_block_directly() {
    unsigned int n = g_thread_count;
    const dim3& b = cuda_emu::g_block_dim;
    uintptr_t shared_start = (uintptr_t)__start_nativemi_emu_shared, shared_stop = (uintptr_t)__stop_nativemi_emu_shared;
    if (shared_start != 0 && shared_stop > shared_start) memset((void*)shared_start, 0xFF, shared_stop - shared_start);
    if (g_launch->dynamic_shared) memset(g_dynamic_pointer, 0xFF, g_launch->dynamic_shared);
    for (unsigned int k = 0; k < n; k++) {
        unsigned int i = g_reverse ? n - 1 - k : k;
        Fiber& f = g_fibers[i];
        f.linear = i;
        f.index = {i % b.x, i / b.x % b.y, i / (b.x * b.y)};
        f.state = FiberState::Ready;
        g_current = &f;
        cuda_emu::g_thread_idx = &f.index;
        g_launch->kernel->invoke(g_param_pointers.data());
    }
    g_current = nullptr;
}

CUresult run_block() {
    unsigned int n = g_thread_count;
    const dim3& b = cuda_emu::g_block_dim;
    for (unsigned int i = 0; i < n; i++) {
        Fiber& f = g_fibers[i];
        f.linear = i;
        f.index = {i % b.x, i / b.x % b.y, i / (b.x * b.y)};
        f.state = FiberState::Ready;
        Stack& s = stack_for(i);
        // Stack tops a whole number of 256 KiB apart would all fall in the same cache sets; staggering them keeps the
        // fibers' hot frames from evicting each other.
        char* top = s.base + s.size - (i * 4160u) % 65536u;
        f.context = fc::make_fcontext(top, (std::size_t)(top - s.base) - page_size(), fiber_main);
    }
    for (unsigned int w = 0; w < g_warps.size(); w++) {
        Warp& warp = g_warps[w];
        unsigned int count = n - w * 32 < 32 ? n - w * 32 : 32;
        warp.present = count == 32 ? 0xffffffffu : (1u << count) - 1;
        warp.exited = warp.arrived = 0;
    }
    g_done = 0;
    g_barrier_arrived = 0;
    g_barrier_count = 0;
    g_first_exited = -1;
    // Shared memory starts undefined on a GPU; all-ones makes a read before the first write show as NaN or -1.
    uintptr_t shared_start = (uintptr_t)__start_nativemi_emu_shared, shared_stop = (uintptr_t)__stop_nativemi_emu_shared;
    if (shared_start != 0 && shared_stop > shared_start) memset((void*)shared_start, 0xFF, shared_stop - shared_start);
    if (g_launch->dynamic_shared) memset(g_dynamic_pointer, 0xFF, g_launch->dynamic_shared);

    // The fibers pass control among themselves; the scheduler gets it back when the block is done, failed or stuck.
    Fiber* first = &g_fibers[g_reverse ? n - 1 : 0];
    g_current = first;
    cuda_emu::g_thread_idx = &first->index;
    fc::transfer_t back = fc::jump_fcontext(first->context, &g_scheduler);
    static_cast<Fiber*>(back.data)->context = back.fctx;
    g_current = nullptr;
    if (g_failed) return fail(g_failure_code, "%s", g_failure);
    if (g_done < n) return fail(CUDA_ERROR_LAUNCH_FAILED, "%s", deadlock_message().c_str());
    return CUDA_SUCCESS;
}

void ensure_alternate_signal_stack() {
    // The fault handler must not run on a fiber stack that overflowed. The .NET runtime gives its threads an
    // alternate stack already; other threads get one here (once).
    static thread_local bool checked = false;
    if (checked) return;
    checked = true;
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
    stack_t stack;
    stack.ss_size = 256 * 1024;
    stack.ss_sp = mmap(nullptr, stack.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack.ss_flags = 0;
    if (stack.ss_sp != MAP_FAILED) sigaltstack(&stack, nullptr);
}

void chain(const struct sigaction& previous, int signal, siginfo_t* info, void* context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) previous.sa_sigaction(signal, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN || previous.sa_handler == SIG_DFL) {
        // Returning re-executes the faulting instruction, which then gets the default action.
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_DFL;
        sigaction(signal, &action, nullptr);
        return;
    }
    previous.sa_handler(signal);
}

void on_fault(int signal, siginfo_t* info, void* context) {
    if (g_guard_active && pthread_equal(pthread_self(), g_guard_thread)) {
        g_guard_active = 0;
        g_fault_address = info->si_addr;
        g_fault_signal = signal;
        g_fault_code = info->si_code;
        siglongjmp(g_fault_jump, 1);
    }
    chain(signal == SIGSEGV ? g_previous_segv : signal == SIGBUS ? g_previous_bus : g_previous_fpe, signal, info, context);
}

std::string fault_text() {
    uintptr_t address = (uintptr_t)g_fault_address;
    if (g_fault_signal == SIGFPE)
        return "integer division by zero or overflow (a GPU returns an unspecified value instead; the code is wrong either way)";
    if (in_stack_guard(address)) return format("stack overflow of the thread's %zu-KiB emulator stack", kStackBytes / 1024);
    if (g_dynamic_region && address >= (uintptr_t)g_dynamic_region + kMaxDynamicShared &&
        address < (uintptr_t)g_dynamic_region + kMaxDynamicShared + page_size())
        return format("illegal address 0x%llx: past the end of the launch's %u bytes of dynamic shared memory", (unsigned long long)address,
                      g_launch ? g_launch->dynamic_shared : 0u);
    return format("illegal address 0x%llx: %s", (unsigned long long)address, describe_address(address).c_str());
}

}  // namespace

void install_fault_handler() {
    static bool installed = false;
    if (installed) return;
    installed = true;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    sigaction(SIGBUS, &action, &g_previous_bus);
    sigaction(SIGFPE, &action, &g_previous_fpe);
}

CUresult run_guarded(const char* what, const std::function<void()>& work) {
    ensure_alternate_signal_stack();
    g_guard_thread = pthread_self();
    if (sigsetjmp(g_fault_jump, 1) != 0) {
        g_guard_active = 0;
        return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "%s: %s", what, fault_text().c_str());
    }
    g_guard_active = 1;
    work();
    g_guard_active = 0;
    return CUDA_SUCCESS;
}

CUresult execute_kernel(const KernelLaunch& launch) {
    g_launch = &launch;
    g_param_pointers.clear();
    for (std::size_t offset : launch.param_offsets) g_param_pointers.push_back((void*)(launch.param_bytes.data() + offset));
    cuda_emu::g_grid_dim = launch.grid;
    cuda_emu::g_block_dim = launch.block;
    g_thread_count = launch.block.x * launch.block.y * launch.block.z;
    if (g_fibers.size() < g_thread_count) g_fibers.resize(g_thread_count);
    g_warps.resize((g_thread_count + 31) / 32);
    g_failed = false;
    if (g_dynamic_region == nullptr) {
        std::size_t page = page_size();
        std::size_t bytes = (kMaxDynamicShared + page - 1) / page * page;
        void* memory = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return fail(CUDA_ERROR_OUT_OF_MEMORY, "the emulator cannot map its shared memory");
        g_dynamic_region = (unsigned char*)memory + bytes - kMaxDynamicShared;
        mprotect((unsigned char*)memory + bytes, page, PROT_NONE);
    }
    // The buffer ends at the guard page (16-byte aligned, as extern __shared__ arrays are).
    std::size_t dynamic = (launch.dynamic_shared + 15u) / 16u * 16u;
    g_dynamic_pointer = g_dynamic_region + kMaxDynamicShared - dynamic;

    ensure_alternate_signal_stack();
    g_guard_thread = pthread_self();
    int jumped = sigsetjmp(g_fault_jump, 1);
    if (jumped == 2) {
        // A fiberless kernel synchronised after all (fail_in_fiber left through here).
        g_guard_active = 0;
        g_current = nullptr;
        g_launch = nullptr;
        return fail(g_failure_code, "%s", g_failure);
    }
    if (jumped != 0) {
        g_guard_active = 0;
        std::string where = g_current ? launch_name() + ", " + thread_name(*g_current) : format("kernel %s", launch.kernel->name);
        std::string what = fault_text();
        g_current = nullptr;
        g_launch = nullptr;
        return fail(CUDA_ERROR_ILLEGAL_ADDRESS, "%s: %s", where.c_str(), what.c_str());
    }
    g_guard_active = 1;
    g_reverse = config().reverse;
    bool reverse = g_reverse;
    const dim3& grid = launch.grid;
    unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    CUresult status = CUDA_SUCCESS;
    for (unsigned long long k = 0; k < blocks && status == CUDA_SUCCESS; k++) {
        unsigned long long i = reverse ? blocks - 1 - k : k;
        cuda_emu::g_block_idx = {(unsigned int)(i % grid.x), (unsigned int)(i / grid.x % grid.y), (unsigned int)(i / ((unsigned long long)grid.x * grid.y))};
        if (launch.fiberless) run_block_directly();
        else status = run_block();
    }
    g_guard_active = 0;
    g_current = nullptr;
    if (status == CUDA_SUCCESS) status = check_canaries(format("kernel %s", launch.kernel->name).c_str());
    g_launch = nullptr;
    return status;
}

}  // namespace emu

namespace cuda_emu {

void* dynamic_shared() { return emu::g_dynamic_pointer; }

int syncthreads(int predicate, int reduction) {
    using namespace emu;
    __asm__ __volatile__("" ::: "memory");
    Fiber& f = *g_current;
    if (g_launch->fiberless) fiberless_sync_error("__syncthreads");
    if (g_first_exited >= 0)
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("reached __syncthreads after %s of the block exited (a barrier must be reached "
                                                       "by every thread of the block)", thread_name(g_fibers[g_first_exited]).c_str()));
    g_barrier_arrived++;
    g_barrier_count += predicate != 0;
    if (g_barrier_arrived == g_thread_count) {
        g_barrier_result = reduction == 0 ? g_barrier_count : reduction == 1 ? g_barrier_count == (int)g_thread_count : g_barrier_count != 0;
        g_barrier_arrived = 0;
        g_barrier_count = 0;
        for (unsigned int i = 0; i < g_thread_count; i++)
            if (g_fibers[i].state == FiberState::Barrier) g_fibers[i].state = FiberState::Ready;
        __asm__ __volatile__("" ::: "memory");
        return g_barrier_result;
    }
    f.state = FiberState::Barrier;
    wait_here();
    __asm__ __volatile__("" ::: "memory");
    return g_barrier_result;
}

}  // namespace cuda_emu

namespace emu {
namespace {

// The rule a collective broke (the hot path below only tests that one was); never returns.
[[noreturn]] __attribute__((noinline, cold)) void collective_error(cuda_emu::WarpOp op, unsigned int mask, int width) {
    using namespace cuda_emu;
    Fiber& f = *g_current;
    unsigned int lane = f.linear % 32, warp_index = f.linear / 32;
    Warp& w = g_warps[warp_index];
    if (!(mask >> lane & 1u))
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("%s with mask 0x%08x, which does not name the calling lane %u", op_name(op), mask, lane));
    if (mask & ~w.present)
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED,
                      format("%s with mask 0x%08x in a partial warp: warp %u of the block has only %d threads (blockDim %ux%ux%u is not a multiple "
                             "of 32), so lanes %s do not exist", op_name(op), mask, warp_index, __builtin_popcount(w.present),
                             g_block_dim.x, g_block_dim.y, g_block_dim.z, lanes(mask & ~w.present).c_str()));
    if (mask & w.exited)
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("%s with mask 0x%08x names lanes %s of warp %u, which have exited", op_name(op), mask,
                                                       lanes(mask & w.exited).c_str(), warp_index));
    if (op <= ShuffleXor && (width < 1 || width > 32 || (width & (width - 1)) != 0))
        fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("%s with width %d (a power of two up to 32 is required)", op_name(op), width));
    fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED,
                  format("reached %s (mask 0x%08x, width %d) while lanes %s of warp %u wait at %s (mask 0x%08x, width %d): the lanes of a "
                         "warp must meet at the same collective", op_name(op), mask, width, lanes(w.arrived).c_str(), warp_index,
                         op_name(w.op), w.mask, w.width));
}

}  // namespace
}  // namespace emu

namespace cuda_emu {

uint64_t warp_collective(WarpOp op, unsigned int mask, uint64_t value, int argument, int width) {
    using namespace emu;
    Fiber& f = *g_current;
    unsigned int lane = f.linear % 32, warp_index = f.linear / 32;
    Warp& w = g_warps[warp_index];
    if (g_launch->fiberless) fiberless_sync_error(op_name(op));
    bool width_ok = width == 32 || op > ShuffleXor || (width >= 1 && width < 32 && (width & (width - 1)) == 0);
    if (__builtin_expect(!(mask >> lane & 1u) || (mask & ~w.present) || (mask & w.exited) || !width_ok ||
                             (w.arrived != 0 && (w.op != op || w.mask != mask || w.width != width)), 0))
        collective_error(op, mask, width);
    if (w.arrived == 0) {
        w.op = op;
        w.mask = mask;
        w.width = width;
    }
    w.value[lane] = value;
    w.argument[lane] = argument;
    w.arrived |= 1u << lane;
    if (w.arrived != mask) {
        f.state = FiberState::Warp;
        wait_here();
        return w.result[lane];
    }
    // Every lane is here: compute each lane's result, then let the others go.
    unsigned int ballot = 0;
    for (unsigned int l = 0; l < 32; l++)
        if ((mask >> l & 1u) && w.value[l] != 0) ballot |= 1u << l;
    for (unsigned int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        unsigned int segment = l & ~(unsigned int)(w.width - 1), within = l & (unsigned int)(w.width - 1);
        int a = w.argument[l];
        unsigned int source = l;
        switch (op) {
            case ShuffleIndex: source = segment + ((unsigned int)a & (unsigned int)(w.width - 1)); break;
            case ShuffleUp: source = (int)within >= a ? l - (unsigned int)a : l; break;
            case ShuffleDown: source = within + (unsigned int)a < (unsigned int)w.width ? l + (unsigned int)a : l; break;
            case ShuffleXor: {
                unsigned int other = l ^ ((unsigned int)a & 31u);
                source = other < segment + (unsigned int)w.width ? other : l;
                break;
            }
            default: break;
        }
        if (op <= ShuffleXor) {
            if (!(mask >> source & 1u)) {
                g_current = &g_fibers[warp_index * 32 + l];
                fail_in_fiber(CUDA_ERROR_LAUNCH_FAILED, format("%s reads lane %u, which is not in the mask 0x%08x", op_name(op), source, mask));
            }
            w.result[l] = w.value[source];
        } else if (op == Ballot) {
            w.result[l] = ballot;
        } else if (op == All) {
            w.result[l] = ballot == mask;
        } else if (op == Any) {
            w.result[l] = ballot != 0;
        } else {
            w.result[l] = 0;
        }
        if (l != lane) g_fibers[warp_index * 32 + l].state = FiberState::Ready;
    }
    w.arrived = 0;
    __asm__ __volatile__("" ::: "memory");
    return w.result[lane];
}

}  // namespace cuda_emu
