// Verilator C++ harness for the Verdigris SoC (boards/soc.py): the simulated board.
//
// Usage: soc_sim. It opens a pseudo-terminal, prints the name of its serial end (the
// "slave", such as /dev/pts/7) on a line of stdout, and runs the SoC until its stdin closes.
// Bytes the host writes to that serial port reach the SoC's `uart_rx` pin as an 8N1 UART
// would send them, DIVISOR clock cycles a bit; what the SoC sends on `uart_tx` is sampled in
// the middle of each bit and written back to the host. Nothing else drives the SoC: the
// host runtime (verdigris.boards.host) talks to it exactly as to a board.
//
// While the line is quiet and the core idle, the harness waits for the host (at most a
// millisecond at a time) between batches of cycles, so an idle board costs no CPU; the
// simulated clock still advances, so the bridge gives up a frame cut short as on a board.

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

#ifndef DIVISOR
#error "compile with -DDIVISOR=<clock cycles a UART bit>"
#endif

namespace {

constexpr int kBatch = 256;  // cycles between two looks at the pseudo-terminal

// The host's end of the UART: sends queued bytes on `uart_rx`, receives from `uart_tx`.
struct Line {
    std::deque<uint8_t> to_board;
    std::vector<uint8_t> to_host;
    // Sending: the 10 bits of the current byte (start, 8 data, stop), the bit, its cycles.
    int send_bits = 0, send_bit = 10, send_cycle = 0;  // bit 10: idle
    // Receiving: the cycle within the byte (from the start bit's edge), the byte so far.
    int receive_cycle = -1, received = 0;
    bool last_tx = true;

    bool busy() const { return !to_board.empty() || send_bit < 10 || receive_cycle >= 0; }

    // The level of `uart_rx` for the next cycle.
    int rx_level() {
        if (send_bit >= 10) {
            if (to_board.empty()) return 1;
            send_bits = (to_board.front() << 1) | (1 << 9);
            to_board.pop_front();
            send_bit = 0;
            send_cycle = 0;
        }
        int level = (send_bits >> send_bit) & 1;
        if (++send_cycle == DIVISOR) {
            send_cycle = 0;
            ++send_bit;
        }
        return level;
    }

    // `uart_tx` as the clock rose.
    void sample(bool tx) {
        if (receive_cycle < 0) {
            if (last_tx && !tx) receive_cycle = 0;  // a start bit's falling edge
        } else {
            ++receive_cycle;
            int middle = receive_cycle - DIVISOR / 2;
            if (middle > 0 && middle % DIVISOR == 0) {
                int bit = middle / DIVISOR;  // 1..8 data, 9 stop
                if (bit <= 8) {
                    received |= (tx ? 1 : 0) << (bit - 1);
                } else {
                    if (tx) to_host.push_back(static_cast<uint8_t>(received));
                    received = 0;
                    receive_cycle = -1;
                }
            }
        }
        last_tx = tx;
    }
};

int open_terminal() {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        std::perror("cannot open a pseudo-terminal");
        std::exit(2);
    }
    // Raw bytes both ways (no echo, no line editing, no CR/LF translation), set here so
    // that nothing the host sends before it configures the port is changed.
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    termios mode{};
    tcgetattr(slave, &mode);
    cfmakeraw(&mode);
    tcsetattr(slave, TCSANOW, &mode);
    // Kept open, so that the terminal lives on while the host opens and closes its end.
    (void)slave;
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    return master;
}

}  // namespace

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    int terminal = open_terminal();
    std::printf("%s\n", ptsname(terminal));
    std::fflush(stdout);

    Vtop top;
    Line line;
    top.uart_rx = 1;
    top.rst = 1;
    for (int i = 0; i < 4; ++i) {
        top.clk = 1;
        top.eval();
        top.clk = 0;
        top.eval();
    }
    top.rst = 0;

    uint8_t buffer[4096];
    while (true) {
        for (int i = 0; i < kBatch; ++i) {
            top.uart_rx = line.rx_level();
            top.clk = 1;
            top.eval();
            line.sample(top.uart_tx);
            top.clk = 0;
            top.eval();
        }
        // To the host what the SoC sent; from the host what it wrote.
        size_t sent = 0;
        while (sent < line.to_host.size()) {
            ssize_t n = write(terminal, line.to_host.data() + sent, line.to_host.size() - sent);
            if (n <= 0) break;  // the host reads slower: keep the rest for later
            sent += static_cast<size_t>(n);
        }
        line.to_host.erase(line.to_host.begin(), line.to_host.begin() + sent);
        bool idle = !line.busy() && line.to_host.empty() && !(top.leds & 1);
        pollfd fds[2] = {{terminal, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        poll(fds, 2, idle ? 1 : 0);
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (read(STDIN_FILENO, buffer, sizeof buffer) <= 0) break;  // the host is gone
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(terminal, buffer, sizeof buffer);
            for (ssize_t i = 0; i < n; ++i) line.to_board.push_back(buffer[i]);
        }
    }
    top.final();
    return 0;
}
