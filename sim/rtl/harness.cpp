// Verilator C++ harness for the Verdigris core: runs jobs at full simulation speed.
//
// Usage: harness JOBS RESULTS [TRACE]. JOBS is a little-endian binary file (written by
// verdigris.sim.rtl.core_runner.run_fast): u32 job count, then per job: u32 instruction words,
// u32 memory bytes, u64 watchdog cycles, u32 read ranges, u32 layer boundaries, the
// instruction words (16 bytes each), the memory image, (u32 first word, u32 word count) per
// range, and per boundary its targets (u32 each, in the order of
// verdigris.arch.counters.COMPLETION_COUNTERS). RESULTS gets, per job: u32 error, u32 timed
// out, f64 seconds of the run, the counters at `done` (u64 each, in the order of
// VERDIGRIS_COUNTERS), u32 snapshots taken, each snapshot's counters (same order), and the
// bytes of each read range.
//
// The core (hw/core_top.py: host inputs registered INPUT_LATENCY cycles) has its memories
// outside it: main memory and the code memory live here, in C++, and the harness answers the
// core's memory interfaces (hw/core.py) as block RAM does: a read's data in the cycle after
// its address and enable, held until the next read; a read and a write of one word in the
// same cycle read the old word. A job writes its instructions and memory image straight
// into these memories and reads its outputs straight out of main memory, so loading costs
// no clock cycles. The clock is then stepped in C++ until `done`, so nothing but the model
// and the memories run per cycle. In each cycle of the run the harness checks the
// completion counters against the next layer boundary's targets and, once reached, copies
// every counter: the snapshot of that boundary (docs/host-port.md).
//
// The counter ports and their order come from Python, the one definition
// (verdigris.arch.counters.COUNTERS): core_runner prepends
// `#define VERDIGRIS_COUNTERS(X) X(cycles) X(macs) ...` to this file when it builds it.
//
// Built with Verilator's --trace-fst (VM_TRACE=1), it writes an FST waveform of every cycle
// of every job (the reset, each run and the resets after errors) to TRACE: clk rises at
// time 2n and falls at 2n+1, so one clock period is 2 time units (Verilator's default time
// precision, 1 ps: a viewer shows 2 ps per cycle). Without VM_TRACE none of that code is
// compiled, so the fast binary pays nothing per cycle for it.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include <csignal>

#include "verilated_fst_c.h"
#endif

#if !defined(DMA_BYTES) || !defined(INPUT_LATENCY) || !defined(MAIN_MEMORY_BYTES) || \
    !defined(INSTRUCTION_CAPACITY)
#error "compile with -DDMA_BYTES=<bytes per main-memory word> -DINPUT_LATENCY=<cycles> \
-DMAIN_MEMORY_BYTES=<bytes> -DINSTRUCTION_CAPACITY=<instructions>"
#endif
#ifndef VERDIGRIS_COUNTERS
#error "VERDIGRIS_COUNTERS(X) is prepended by verdigris.sim.rtl.core_runner (the counter ports)"
#endif

namespace {

#define VERDIGRIS_ONE(name) +1
constexpr int kCounters = 0 VERDIGRIS_COUNTERS(VERDIGRIS_ONE);
#undef VERDIGRIS_ONE

// Every counter port, in port order.
void read_counters(const Vtop* top, uint64_t* out) {
    int i = 0;
#define VERDIGRIS_READ(name) out[i++] = static_cast<uint64_t>(top->name);
    VERDIGRIS_COUNTERS(VERDIGRIS_READ)
#undef VERDIGRIS_READ
}

// Whether the completion counters (which include this cycle's completions) have reached a
// boundary's targets (load, compute, compute NOPs, store): the compute unit's GEMMs and
// VECTORs and its NOPs are two in-order streams (verdigris.arch.host_port.boundary_reached).
bool boundary_reached(const Vtop* top, const uint32_t* target) {
    uint64_t nops = top->compute_nops_completed;
    return top->load_completed >= target[0] && top->store_completed >= target[3] &&
           nops >= target[2] && top->compute_completed - nops >= uint64_t(target[1]) - target[2];
}

// Byte-wise access to Verilator signals of any width.
template <typename T>
void set_bytes(T& signal, const uint8_t* bytes, int count) {
    uint64_t value = 0;
    for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
    signal = static_cast<T>(value);
}
template <std::size_t N>
void set_bytes(VlWide<N>& signal, const uint8_t* bytes, int count) {
    for (std::size_t w = 0; w < N; ++w) {
        uint32_t value = 0;
        for (int b = 3; b >= 0; --b) {
            int index = static_cast<int>(w) * 4 + b;
            value = (value << 8) | (index < count ? bytes[index] : 0);
        }
        signal[w] = value;
    }
}
template <typename T>
void get_bytes(const T& signal, uint8_t* bytes, int count) {
    uint64_t value = static_cast<uint64_t>(signal);
    for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
}
template <std::size_t N>
void get_bytes(const VlWide<N>& signal, uint8_t* bytes, int count) {
    for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(signal[i / 4] >> (8 * (i % 4)));
}

#if VM_TRACE
// Set by Ctrl-C or SIGTERM: a traced run stops at the next clock edge and closes its
// waveform, so a run that hangs can be stopped and still looked at.
volatile std::sig_atomic_t stop_requested = 0;
void request_stop(int) { stop_requested = 1; }
#endif

constexpr uint64_t kMainBytes = MAIN_MEMORY_BYTES;
constexpr uint64_t kMainWords = kMainBytes / DMA_BYTES;
constexpr uint64_t kCodeBytes = uint64_t(INSTRUCTION_CAPACITY) * 16u;

// A zeroed memory of `bytes`. calloc maps untouched pages lazily, so a large main memory
// costs only what a program uses.
uint8_t* zeroed(uint64_t bytes) {
    auto* memory = static_cast<uint8_t*>(std::calloc(bytes, 1));
    if (!memory) {
        std::fprintf(stderr, "cannot allocate %llu bytes of memory\n",
                     static_cast<unsigned long long>(bytes));
        std::exit(2);
    }
    return memory;
}

// The model, its memories, and in a traced build its waveform. The destructor closes the
// waveform, so every way out of main (the end, a truncated job file) leaves a complete file.
struct Core {
    Vtop* top = new Vtop;
    uint8_t* main = zeroed(kMainBytes);
    uint8_t* code = zeroed(kCodeBytes);
#if VM_TRACE
    VerilatedFstC* trace = nullptr;
    uint64_t time = 0;

    bool open_trace(const char* path) {
        trace = new VerilatedFstC;
        top->trace(trace, 99);  // every level of the hierarchy
        trace->open(path);
        return trace->isOpen();
    }

    [[noreturn]] void stop() {
        if (trace) trace->close();
        std::fprintf(stderr, "stopped by a signal after %llu clock edges; waveform closed\n",
                     static_cast<unsigned long long>(time));
        std::_Exit(130);
    }
#endif

    // One clock cycle: the memories take this cycle's requests (the state after the last
    // edge, settled), the clock rises, and the read data of those requests is set for the
    // next cycle while the clock falls.
    void tick() {
#if VM_TRACE
        if (stop_requested) stop();
#endif
        const uint8_t* read = nullptr;
        const uint8_t* fetched = nullptr;
        if (top->main_read_en) {
            uint64_t word = top->main_read_addr;
            read = word < kMainWords ? main + word * DMA_BYTES : nothing;
        }
        if (top->code_en) {
            uint64_t index = top->code_addr;
            fetched = index < INSTRUCTION_CAPACITY ? code + index * 16u : nothing;
        }
        uint8_t before[DMA_BYTES], instruction[16];
        if (read) std::memcpy(before, read, DMA_BYTES);  // a write below does not change it
        if (fetched) std::memcpy(instruction, fetched, 16);
        uint64_t enables = top->main_write_en;
        uint64_t word = top->main_write_addr;
        if (enables && word < kMainWords) {
            uint8_t data[DMA_BYTES];
            get_bytes(top->main_write_data, data, DMA_BYTES);
            for (int b = 0; b < DMA_BYTES; ++b)
                if ((enables >> b) & 1u) main[word * DMA_BYTES + b] = data[b];
        }
        top->clk = 1;
        top->eval();
#if VM_TRACE
        if (trace) trace->dump(time++);
#endif
        top->clk = 0;
        if (read) set_bytes(top->main_read_data, before, DMA_BYTES);
        if (fetched) set_bytes(top->code_data, instruction, 16);
        top->eval();
#if VM_TRACE
        if (trace) trace->dump(time++);
#endif
    }

    ~Core() {
#if VM_TRACE
        if (trace) {
            trace->close();
            delete trace;
        }
#endif
        top->final();
        delete top;
        std::free(main);
        std::free(code);
    }

    // What an address outside a memory reads: zeros.
    static constexpr uint8_t nothing[64] = {};
};

template <typename T>
bool read_value(FILE* file, T& value) {
    return std::fread(&value, sizeof(T), 1, file) == 1;
}

}  // namespace

int main(int argc, char** argv) {
#if VM_TRACE
    const int most_args = 4;
#else
    const int most_args = 3;
#endif
    if (argc < 3 || argc > most_args) {
        std::fprintf(stderr, "usage: %s JOBS RESULTS%s\n", argv[0],
                     most_args == 4 ? " [TRACE]" : " (this build has no tracing)");
        return 2;
    }
    FILE* jobs = std::fopen(argv[1], "rb");
    FILE* results = std::fopen(argv[2], "wb");
    if (!jobs || !results) {
        std::fprintf(stderr, "cannot open the job or result file\n");
        return 2;
    }
    Verilated::commandArgs(1, argv);
#if VM_TRACE
    Verilated::traceEverOn(true);  // before the model is made: its trace hooks are set up then
#endif
    Core core;
#if VM_TRACE
    if (argc == 4 && !core.open_trace(argv[3])) {
        std::fprintf(stderr, "cannot open the waveform file %s\n", argv[3]);
        return 2;
    }
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
#endif
    core.top->rst = 1;
    core.top->run = 0;
    core.top->eval();
    core.tick();
    core.tick();
    core.top->rst = 0;

    uint32_t job_count = 0;
    read_value(jobs, job_count);
    for (uint32_t job = 0; job < job_count; ++job) {
        uint32_t words = 0, memory_bytes = 0, ranges = 0, boundaries = 0;
        uint64_t watchdog = 0;
        if (!read_value(jobs, words) || !read_value(jobs, memory_bytes) ||
            !read_value(jobs, watchdog) || !read_value(jobs, ranges) ||
            !read_value(jobs, boundaries)) {
            std::fprintf(stderr, "truncated job file\n");
            return 2;
        }
        std::vector<uint8_t> code(words * 16u), memory(memory_bytes);
        std::vector<uint32_t> range(2u * ranges), targets(4u * boundaries);
        if (std::fread(code.data(), 1, code.size(), jobs) != code.size() ||
            std::fread(memory.data(), 1, memory.size(), jobs) != memory.size() ||
            std::fread(range.data(), 4, range.size(), jobs) != range.size() ||
            std::fread(targets.data(), 4, targets.size(), jobs) != targets.size()) {
            std::fprintf(stderr, "truncated job file\n");
            return 2;
        }
        if (code.size() > kCodeBytes || memory.size() > kMainBytes) {
            std::fprintf(stderr, "job %u does not fit the memories\n", job);
            return 2;
        }
        // Load instructions and memory: straight into the memories, while the core is idle.
        std::memcpy(core.code, code.data(), code.size());
        std::memcpy(core.main, memory.data(), memory.size());
        // Run to done. (`run` reaches the bare core's memory requests combinationally:
        // settle before the memories take them.)
        core.top->run = 1;
        core.top->eval();
        core.tick();
        core.top->run = 0;
        core.top->eval();
        for (int i = 0; i < INPUT_LATENCY; ++i) core.tick();  // until the core has seen `run`
        auto began = std::chrono::steady_clock::now();
        uint64_t cycles = 0;
        uint32_t timed_out = 0, taken = 0;
        std::vector<uint64_t> snapshots(std::size_t(boundaries) * kCounters);
        while (!core.top->done) {
            // The state after a clock edge is cycle `cycles` of the run: counters hold the
            // increments of the cycles before it, completion counters this one's too.
            while (taken < boundaries && boundary_reached(core.top, &targets[4u * taken])) {
                read_counters(core.top, &snapshots[std::size_t(taken) * kCounters]);
                ++taken;
            }
            core.tick();
            if (++cycles > watchdog) {
                timed_out = 1;
                break;
            }
        }
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
        uint32_t error = core.top->error;
        std::fwrite(&error, 4, 1, results);
        std::fwrite(&timed_out, 4, 1, results);
        std::fwrite(&seconds, 8, 1, results);
        uint64_t counters[kCounters];
        read_counters(core.top, counters);
        std::fwrite(counters, 8, kCounters, results);
        std::fwrite(&taken, 4, 1, results);
        std::fwrite(snapshots.data(), 8, std::size_t(taken) * kCounters, results);
        if (error || timed_out) {
            // An error is fatal until the host resets the core; memories keep their data.
            core.top->rst = 1;
            core.tick();
            core.tick();
            core.top->rst = 0;
        }
        // Read back the requested ranges, straight out of main memory.
        for (uint32_t r = 0; r < ranges; ++r) {
            uint64_t first = range[2 * r], count = range[2 * r + 1];
            if (first + count > kMainWords) {
                std::fprintf(stderr, "job %u reads past the end of main memory\n", job);
                return 2;
            }
            std::fwrite(core.main + first * DMA_BYTES, 1, count * DMA_BYTES, results);
        }
    }
    std::fclose(results);
    return 0;  // ~Core closes the waveform
}
