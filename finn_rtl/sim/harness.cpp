// Verilator testbench for a finn-rtl AXI-stream top: streams beats from a file
// in, collects output beats, and records per-frame cycle stamps.
//
// usage: Vtop IN_WORDS IN_BEATS_PER_FRAME OUT_WORDS OUT_BEATS_PER_FRAME FRAMES
//             input.bin output.bin stats.txt VALID_PERCENT READY_PERCENT SEED MAX_IDLE
// input.bin/output.bin: little-endian uint32 words, IN_WORDS/OUT_WORDS per beat.
// stats.txt: total cycles, the seconds spent in the clock loop (no start-up or file I/O), then
// one line per frame with its first input and last output cycle.
// Built with -DFIFO_PEAK_WORDS=n for a design with `fifo_peaks`/`fifo_levels` outputs (FIFO sizing
// and stall diagnosis), the stats end with a line "fifo_peaks w0 w1 ..." holding that port's value
// after the run, and a stall report ends with a line "fifo_levels w0 w1 ...".
// Built with -DWEIGHT_PORT for a design with weights written at run time, a 13th argument names a
// file of (register, value) uint32 pairs, written through the `weights` port after reset and
// before the first beat, one a cycle (the cycle count starts after them).
// Built with -DPARTS for a design cut in two (`partition.py`, which generates parts.h): the same
// loop runs on two threads, one per half, each on a stand-in for the top (`Half`) that evaluates
// its half and takes the signals crossing the cut from the other thread's publication of the
// cycle; with CUT_LOOKAHEAD the first half runs ahead while the cut FIFO's ready is sure to be
// high. The second half's thread, which sees the outputs, decides when the run ends.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "verilated.h"
#ifndef PARTS
#include TOP_HEADER
#endif

template <typename T>
static void set_port(T& port, const uint32_t* words, int n) {
    uint64_t value = words[0];
    if (n > 1) value |= static_cast<uint64_t>(words[1]) << 32;
    port = static_cast<T>(value);
}
template <std::size_t N>
static void set_port(VlWide<N>& port, const uint32_t* words, int n) {
    for (std::size_t i = 0; i < N; ++i) port[i] = static_cast<int>(i) < n ? words[i] : 0;
}
template <typename T>
static void get_port(const T& port, uint32_t* words, int n) {
    uint64_t value = static_cast<uint64_t>(port);
    words[0] = static_cast<uint32_t>(value);
    if (n > 1) words[1] = static_cast<uint32_t>(value >> 32);
}
template <std::size_t N>
static void get_port(const VlWide<N>& port, uint32_t* words, int n) {
    for (int i = 0; i < n; ++i) words[i] = static_cast<std::size_t>(i) < N ? port[i] : 0;
}

static void copy_bits(uint32_t* dst, int to, const uint32_t* src, int from, int length) {
    if (((to | from) & 31) == 0) {  // whole words, as the generated code mostly asks for
        const int words = length >> 5, rest = length & 31;
        for (int i = 0; i < words; ++i) dst[(to >> 5) + i] = src[(from >> 5) + i];
        if (rest) {
            const uint32_t mask = (1u << rest) - 1u;
            uint32_t& word = dst[(to >> 5) + words];
            word = (word & ~mask) | (src[(from >> 5) + words] & mask);
        }
        return;
    }
    for (int i = 0; i < length; ++i) {
        const uint32_t bit = (src[(from + i) >> 5] >> ((from + i) & 31)) & 1u;
        dst[(to + i) >> 5] = (dst[(to + i) >> 5] & ~(1u << ((to + i) & 31))) | (bit << ((to + i) & 31));
    }
}
template <typename T>
static bool port_bit(const T& port, int bit) { return (static_cast<uint64_t>(port) >> bit) & 1u; }
template <std::size_t N>
static bool port_bit(const VlWide<N>& port, int bit) { return (port[bit >> 5] >> (bit & 31)) & 1u; }
static bool word_bit(const uint32_t* words, int bit) { return (words[bit >> 5] >> (bit & 31)) & 1u; }
static void set_bits(uint32_t* dst, int to, int length) {
    for (int i = 0; i < length; ++i) dst[(to + i) >> 5] |= 1u << ((to + i) & 31);
}

#ifdef FIFO_PEAK_WORDS
template <typename T>
static void print_words(FILE* f, const char* label, const T& port) {
    uint32_t words[FIFO_PEAK_WORDS];
    get_port(port, words, FIFO_PEAK_WORDS);
    std::fprintf(f, "%s", label);
    for (int i = 0; i < FIFO_PEAK_WORDS; ++i) std::fprintf(f, " %u", words[i]);
    std::fprintf(f, "\n");
}
#endif

template <class Top>
static void print_more_stats(FILE*, const Top*) {}

// `report`: this copy of the loop writes the result files and messages. `until`: this copy
// follows (with -DPARTS, the first half's thread): it offers the same inputs cycle for cycle
// with the same random gaps, takes no outputs, and stops when `until` is set.
template <class Top>
static int run(int argc, char** argv, Top* top, bool report, const std::atomic<bool>* until = nullptr) {
#ifdef WEIGHT_PORT
    const int arguments = 14;
#else
    const int arguments = 13;
#endif
    if (argc != arguments) {
        if (report) std::fprintf(stderr, "usage: %s IN_WORDS IN_BPF OUT_WORDS OUT_BPF FRAMES in out stats "
                             "VALID%% READY%% SEED MAX_IDLE%s\n", argv[0], arguments == 14 ? " weights" : "");
        return 2;
    }
    const int in_words = std::atoi(argv[1]);
    const long in_bpf = std::atol(argv[2]);
    const int out_words = std::atoi(argv[3]);
    const long out_bpf = std::atol(argv[4]);
    const long frames = std::atol(argv[5]);
    const int valid_pct = std::atoi(argv[9]);
    const int ready_pct = std::atoi(argv[10]);
    const unsigned seed = static_cast<unsigned>(std::atoi(argv[11]));
    const long max_idle = std::atol(argv[12]);

    const long in_beats = in_bpf * frames, out_beats = out_bpf * frames;
    std::vector<uint32_t> input(static_cast<std::size_t>(in_beats) * in_words);
    FILE* f = std::fopen(argv[6], "rb");
    if (!f || std::fread(input.data(), 4, input.size(), f) != input.size()) {
        if (report) std::fprintf(stderr, "cannot read %ld beats from %s\n", in_beats, argv[6]);
        return 2;
    }
    std::fclose(f);
    std::vector<uint32_t> output(static_cast<std::size_t>(out_beats) * out_words);
    std::vector<uint64_t> in_cycle(in_beats), out_cycle(out_beats);

    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> percent(0, 99);

    top->clk = 0;
    top->rst = 1;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
    }
    top->rst = 0;
    top->eval();
#ifdef WEIGHT_PORT
    {
        FILE* w = std::fopen(argv[13], "rb");
        if (!w) {
            if (report) std::fprintf(stderr, "cannot read weights from %s\n", argv[13]);
            return 2;
        }
        uint32_t pair[2];
        while (std::fread(pair, 4, 2, w) == 2) {
            top->clk = 0;
            top->weights_addr = pair[0];
            top->weights_data = pair[1];
            top->weights_valid = 1;
            top->eval();
            top->clk = 1;
            top->eval();
        }
        std::fclose(w);
        top->weights_valid = 0;
        for (int i = 0; i < 4; ++i) {  // the writes' register stages drain
            top->clk = 0; top->eval();
            top->clk = 1; top->eval();
        }
    }
#endif

    long next_in = 0, next_out = 0, idle = 0, loaded = -1;
    const auto loop_start = std::chrono::steady_clock::now();
    uint64_t cycle = 0;
    bool offer = false;
    const bool always_valid = valid_pct >= 100, always_ready = ready_pct >= 100;
    while (until ? !until->load(std::memory_order_relaxed) : next_out < out_beats) {
        // Falling edge and new inputs are evaluated together; outputs are then sampled for the
        // rising edge, so each cycle costs two evaluations.
        top->clk = 0;
        if (next_in < in_beats) {
            if (!offer) offer = always_valid || percent(rng) < valid_pct;  // AXI: hold valid until accepted
            top->s_axis_tvalid = offer;
            if (loaded != next_in) {  // a wide tdata costs a copy per word: write it once per beat
                set_port(top->s_axis_tdata, &input[static_cast<std::size_t>(next_in) * in_words], in_words);
                loaded = next_in;
            }
        } else {
            top->s_axis_tvalid = 0;
        }
        top->m_axis_tready = always_ready || percent(rng) < ready_pct;
        top->eval();
        const bool in_fire = top->s_axis_tvalid && top->s_axis_tready;
        const bool out_fire = !until && top->m_axis_tvalid && top->m_axis_tready;
        if (in_fire) {
            in_cycle[next_in++] = cycle;
            offer = false;
        }
        if (out_fire) {
            get_port(top->m_axis_tdata, &output[static_cast<std::size_t>(next_out) * out_words], out_words);
            out_cycle[next_out++] = cycle;
        }
        idle = (in_fire || out_fire) ? 0 : idle + 1;
        if (idle > max_idle && !until) {
            if (!report) return 3;
            std::fprintf(stderr,
                         "stall: no stream moved for %ld cycles at cycle %llu; input accepted %ld/%ld "
                         "beats (tready=%d), output produced %ld/%ld beats (tvalid=%d)\n",
                         max_idle, static_cast<unsigned long long>(cycle), next_in, in_beats,
                         static_cast<int>(top->s_axis_tready), next_out, out_beats,
                         static_cast<int>(top->m_axis_tvalid));
#ifdef FIFO_PEAK_WORDS
            print_words(stderr, "fifo_levels", top->fifo_levels);
#endif
            return 3;
        }
        top->clk = 1;
        top->eval();
        ++cycle;
    }
    const std::chrono::duration<double> loop_seconds = std::chrono::steady_clock::now() - loop_start;
    top->final();
    if (!report) return 0;

    f = std::fopen(argv[7], "wb");
    std::fwrite(output.data(), 4, output.size(), f);
    std::fclose(f);
    f = std::fopen(argv[8], "w");
    std::fprintf(f, "cycles %llu\n", static_cast<unsigned long long>(cycle));
    std::fprintf(f, "loop_seconds %.6f\n", loop_seconds.count());
#ifdef FIFO_PEAK_WORDS
    print_words(f, "fifo_peaks", top->fifo_peaks);
#endif
    print_more_stats(f, top);
    for (long i = 0; i < frames; ++i)
        std::fprintf(f, "frame %ld %llu %llu\n", i,
                     static_cast<unsigned long long>(in_cycle[i * in_bpf]),
                     static_cast<unsigned long long>(out_cycle[(i + 1) * out_bpf - 1]));
    std::fclose(f);
    return 0;
}

#ifndef PARTS
int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<TOP_CLASS>(context.get());
    return run(argc, argv, top.get(), true);
}
#else
#include <atomic>
#include <cstring>
#include <thread>

#include "parts.h"

static const int MAX_WORDS = PUBLISHED_WORDS0 > PUBLISHED_WORDS1 ? PUBLISHED_WORDS0 : PUBLISHED_WORDS1;

struct Slot {
    uint64_t out_fires;  // the second half's: the cut FIFO's output handshakes before the cycle
    uint32_t words[MAX_WORDS];
};

// Cycles the first half may run ahead of the second (a slot is written again only after the
// other thread has finished the cycle it was for, see `obtain`), up to 16 MB of slots. How much
// work each half has changes over thousands of cycles (a frame fills the pipeline's first layers
// first), and a thread can lose its core for a while: on MobileNet-v1 with a busy loop beside it
// on 2 cores, a ring of 64 cycles ran at 98k cycles/s, 4096 at 111k, 32768 at 120k, and meeting
// every cycle at 58k. On an idle machine all ran alike (300-320k).
static const uint64_t RING = (16u << 20) / (2 * sizeof(Slot)) < 32768 ? (16u << 20) / (2 * sizeof(Slot)) : 32768;

// What the two threads share: each half's values for the other half and the top-level outputs,
// published after each rising edge into the slot of that cycle, and how many cycles have been
// published (the initial values are cycle 0's).
struct Exchange {
    alignas(64) std::atomic<uint64_t> published[2] = {{0}, {0}};
    alignas(64) std::atomic<bool> finished{false};
    alignas(64) std::atomic<uint64_t> predicted_cycles{0};  // cycles the first half ran on a sure ready
    alignas(64) Slot slots[2][RING] = {};
};

template <int K, class Model>
struct Half {
    PART_TOP_PORTS
    Model* model;
    Exchange* exchange;
    uint64_t cycle = 0;  // rising edges so far
    uint64_t obtained = ~0ull;  // the cycle `other` holds the other half's values for
    uint64_t handshakes = 0;  // at the cut FIFO before `cycle`: inputs (first half), outputs (second)
    uint64_t predicted_cycles = 0;  // the first half's, shown in `exchange` for the stats
    const uint32_t* other = nullptr;
    uint32_t predicted[MAX_WORDS] = {};  // the second half's values as the first half reads them: a high ready
    bool started = false, last_clk = false;

    Half(Model* m, Exchange* x) : model(m), exchange(x) {
#if CUT_LOOKAHEAD
        predicted[CUT_READY_BIT >> 5] = 1u << (CUT_READY_BIT & 31);
#endif
    }

    Slot& mine(uint64_t c) { return exchange->slots[K][c % RING]; }
    void publish_into(uint32_t* words) {
        if constexpr (K == 0) publish0(*model, words); else publish1(*model, words);
    }
    void apply(const uint32_t* from_other) {
        if constexpr (K == 0) apply0(*model, *this, from_other); else apply1(*model, *this, from_other);
    }
    void publish() {
        Slot& slot = mine(cycle);
        publish_into(slot.words);
        slot.out_fires = handshakes;
        exchange->published[K].store(cycle + 1, std::memory_order_release);
    }
    // The other half's values for this cycle: its publication, once there. The first half does
    // not wait for it while the cut FIFO's ready is sure to be high: the FIFO holds at most the
    // beats that went in less those out by the second half's last published cycle, and the ready
    // is all the first half reads from the second (`partition._lookahead`). The first half keeps
    // 4 cycles clear of the ring's end, so no slot it reads is being written. False once the
    // second half has finished the run.
    bool obtain() {
        if (obtained == cycle) return true;
        for (unsigned spins = 0;; ++spins) {
            const uint64_t theirs = exchange->published[1 - K].load(std::memory_order_acquire);
            if (theirs > cycle) {
                other = exchange->slots[1 - K][cycle % RING].words;
                break;
            }
#if CUT_LOOKAHEAD
            if constexpr (K == 0) {
                if (theirs > 0 && cycle + 4 <= theirs + RING &&
                    handshakes - exchange->slots[1][(theirs - 1) % RING].out_fires < CUT_FIFO_WORDS) {
                    other = predicted;
                    // a plain store: only the other thread's stats read it, after the run
                    exchange->predicted_cycles.store(++predicted_cycles, std::memory_order_relaxed);
                    break;
                }
            }
#endif
            if (K == 0 && exchange->finished.load(std::memory_order_relaxed)) return false;
            if (spins > 4096) std::this_thread::yield();
#if defined(__x86_64__)
            else __builtin_ia32_pause();
#endif
        }
        obtained = cycle;
        const uint32_t* both[2] = {K == 0 ? mine(cycle).words : other, K == 0 ? other : mine(cycle).words};
        top_outputs(*this, both);
        return true;
    }
    // The cycle's handshake at the cut FIFO, read before the rising edge evaluates.
    void count_handshake() {
#if CUT_LOOKAHEAD
        if constexpr (K == 0) {
            handshakes += word_bit(mine(cycle).words, CUT_VALID_BIT) && word_bit(other, CUT_READY_BIT);
        } else {
            handshakes += cut_fifo_out_fire(*model);
        }
#endif
    }
    void eval() {
        if (!started) {  // like the whole design's first eval: the initial values, no edge
            started = true;
            last_clk = clk;
            const uint32_t none[MAX_WORDS] = {};
            apply(none);
            model->eval();
            publish();
            return;
        }
        const bool rising = clk && !last_clk;
        last_clk = clk;
        if (!obtain()) return;
        if (rising) count_handshake();
        apply(other);
        model->eval();
        if (rising) {
            ++cycle;
            publish();
            return;
        }
        // What this half published for the cycle must not have changed when the cycle's inputs
        // came in: the other half has computed with it.
        uint32_t now[MAX_WORDS] = {};
        publish_into(now);
        if (std::memcmp(now, mine(cycle).words, sizeof(uint32_t) * (K == 0 ? PUBLISHED_WORDS0 : PUBLISHED_WORDS1)) != 0) {
            std::fprintf(stderr, "partition: half %d's values crossing the cut changed within cycle %llu "
                                 "(they depend combinationally on the cycle's inputs)\n",
                         K, static_cast<unsigned long long>(cycle));
            std::fflush(stderr);
            std::_Exit(4);
        }
    }
    void final() { model->final(); }
};

template <int K, class Model>
static void print_more_stats(FILE* f, const Half<K, Model>* half) {
    std::fprintf(f, "predicted_cycles %llu\n",
                 static_cast<unsigned long long>(half->exchange->predicted_cycles.load(std::memory_order_relaxed)));
}

int main(int argc, char** argv) {
    auto exchange = std::make_unique<Exchange>();  // megabytes of slots: not on the stack
    int first_result = 0;
    std::thread first([&] {
        auto context = std::make_unique<VerilatedContext>();
        auto model = std::make_unique<VPart0>(context.get());
        Half<0, VPart0> half(model.get(), exchange.get());
        first_result = run(argc, argv, &half, false, &exchange->finished);
    });
    int result;
    {
        auto context = std::make_unique<VerilatedContext>();
        auto model = std::make_unique<VPart1>(context.get());
        Half<1, VPart1> half(model.get(), exchange.get());
        result = run(argc, argv, &half, true);
        exchange->finished.store(true, std::memory_order_relaxed);
        first.join();
    }
    return result != 0 ? result : first_result;
}
#endif
