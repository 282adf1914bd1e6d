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
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "verilated.h"
#include TOP_HEADER

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

int main(int argc, char** argv) {
#ifdef WEIGHT_PORT
    const int arguments = 14;
#else
    const int arguments = 13;
#endif
    if (argc != arguments) {
        std::fprintf(stderr, "usage: %s IN_WORDS IN_BPF OUT_WORDS OUT_BPF FRAMES in out stats "
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
        std::fprintf(stderr, "cannot read %ld beats from %s\n", in_beats, argv[6]);
        return 2;
    }
    std::fclose(f);
    std::vector<uint32_t> output(static_cast<std::size_t>(out_beats) * out_words);
    std::vector<uint64_t> in_cycle(in_beats), out_cycle(out_beats);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<TOP_CLASS>(context.get());
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
            std::fprintf(stderr, "cannot read weights from %s\n", argv[13]);
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
    while (next_out < out_beats) {
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
        const bool out_fire = top->m_axis_tvalid && top->m_axis_tready;
        if (in_fire) {
            in_cycle[next_in++] = cycle;
            offer = false;
        }
        if (out_fire) {
            get_port(top->m_axis_tdata, &output[static_cast<std::size_t>(next_out) * out_words], out_words);
            out_cycle[next_out++] = cycle;
        }
        idle = (in_fire || out_fire) ? 0 : idle + 1;
        if (idle > max_idle) {
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

    f = std::fopen(argv[7], "wb");
    std::fwrite(output.data(), 4, output.size(), f);
    std::fclose(f);
    f = std::fopen(argv[8], "w");
    std::fprintf(f, "cycles %llu\n", static_cast<unsigned long long>(cycle));
    std::fprintf(f, "loop_seconds %.6f\n", loop_seconds.count());
#ifdef FIFO_PEAK_WORDS
    print_words(f, "fifo_peaks", top->fifo_peaks);
#endif
    for (long i = 0; i < frames; ++i)
        std::fprintf(f, "frame %ld %llu %llu\n", i,
                     static_cast<unsigned long long>(in_cycle[i * in_bpf]),
                     static_cast<unsigned long long>(out_cycle[(i + 1) * out_bpf - 1]));
    std::fclose(f);
    return 0;
}
