// responder: plays a DHT22 on a gpio-sim line in real time, for
// make kernel-test (image/kerneltest/README.md).
//
// It watches the line's level (the sim line's sysfs "value") for the host's
// start pulse: low while the host drives it, high again on the release.
// Then it drives the answer by writing the line's "pull" ("pull-down" is the
// sensor pulling the line low, "pull-up" is the bus's pull-up): Tgo, the
// 80/80 us preamble, 40 bits (50 us low, then 26 us high for 0 or 70 us high
// for 1) and a final 50 us low. It busy-waits on CLOCK_MONOTONIC for every
// edge, pinned to its own CPU, and measures how late each write landed
// against its schedule: that error is reported on exit, so a failed read can
// be told apart from the responder's own jitter.
//
// Before each frame the values of the next frame are in DIR/next as
// "SEQ RH T" (tenths, T signed), and every frame sent is appended to
// DIR/sent the same way: the reader checks what it decoded against them.
//
// Usage: responder -line SYSFSDIR -dir DIR [-cpu N] [-jitter US] [-tgo US]
//                  [-values random|walk] [-fault KIND] [-fault-every N]
//                  [-seed N] [-rt PRIO] [-power SYSFSDIR -stop-after N]
//                  [-irq NAME] [-poll sleep|yield]
// -irq names the reader's edge interrupt in /proc/interrupts (its
// consumer): "sensord" for our capture, "dht11" for the kernel's driver.
// -poll is how the responder waits between its looks at the line:
// "sleep" (nanosleep, the default) or "yield" (sched_yield until the
// time has passed), for a guest whose short sleeps end only at the next
// scheduler tick (4 ms on the arm64 guest under TCG, longer than the host's
// start pulse).
// -power and -stop-after play a DHT22 that a power cycle revives: after N
// frames it stops answering, until the power line (another sim line,
// which sensord drives as an output) was low for at least a second and
// high again.
// Faults, on every Nth frame (-fault-every, 1 = all): none, noanswer (stays
// silent), checksum (a wrong checksum byte), stucklow (holds the line low),
// dht11 (DHT11 bit widths: 50 us low, 24/70 us high, whole values), slow
// (every rising edge 24 us late, as a weak or missing pull-up makes it:
// a 0 bit's high shrinks to 2 us). SIGTERM or SIGINT ends it;
// it prints one "responder:" line with its figures and exits 0.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Timing errors of the writes, in ns: sum, max, and a histogram in 1 us
// buckets (the last one holds everything at or above 63 us).
#define HIST 64
static struct {
	int64_t edges, sum, max;
	int64_t hist[HIST];
	int64_t frames, missed_release;
	int64_t tgo_sum, tgo_max; // release seen to the answer's first edge
} st;

static int fd_value, fd_pull, fd_power = -1;

// Power: the frames answered since power-on, when the power went off (-1:
// it is on), and the cycles seen.
static long since_on;
static int64_t off_at = -1;
static long cycles;

static int level(void) {
	char c;
	if (pread(fd_value, &c, 1, 0) != 1) {
		perror("responder: reading value");
		exit(1);
	}
	return c == '1';
}

static void pull(int up) {
	static const char hi[] = "pull-up", lo[] = "pull-down";
	const char *s = up ? hi : lo;
	size_t n = up ? sizeof hi - 1 : sizeof lo - 1;
	if (pwrite(fd_pull, s, n, 0) != (ssize_t)n) {
		perror("responder: writing pull");
		exit(1);
	}
}

static int64_t now_ns(void);

// poll_yield: -poll yield (see the top).
static int poll_yield;

// nap waits d ns, by sleeping or, with -poll yield, by giving the CPU to
// whoever else wants it until d has passed.
static void nap(int64_t d) {
	if (!poll_yield) {
		const struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
		nanosleep(&ts, NULL);
		return;
	}
	int64_t until = now_ns() + d;
	while (now_ns() < until)
		sched_yield();
}

// power_check looks at the power line: off starts the clock, on after at
// least a second off revives the sensor.
static void power_check(void) {
	if (fd_power < 0)
		return;
	char c;
	if (pread(fd_power, &c, 1, 0) != 1) {
		perror("responder: reading power");
		exit(1);
	}
	if (c != '1' && off_at < 0)
		off_at = now_ns();
	if (c == '1' && off_at >= 0) {
		if (now_ns() - off_at >= 1000000000LL) {
			since_on = 0;
			cycles++;
		}
		off_at = -1;
	}
}

// at busy-waits until deadline, sets the level and records how late the
// write completed.
static void at(int64_t deadline, int up) {
	while (now_ns() < deadline)
		;
	pull(up);
	int64_t late = now_ns() - deadline;
	st.edges++;
	st.sum += late;
	if (late > st.max)
		st.max = late;
	int64_t b = late / 1000;
	st.hist[b >= HIST ? HIST - 1 : b]++;
}

// armed waits, at normal priority, until the reader's edge interrupt is
// requested: /proc/interrupts names it after the consumer (-irq). Only a
// one-CPU guest needs it (see Tgo below); it gives up after 50 ms.
static const char *irq_name = "sensord";

static void armed(void) {
	static char buf[16384];
	int64_t limit = now_ns() + 50 * 1000000LL;
	while (now_ns() < limit) {
		int fd = open("/proc/interrupts", O_RDONLY);
		if (fd < 0)
			return;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, irq_name)) {
				// The interrupt's thread is new and becomes real-time only
				// when it first runs: let it, before the frame's
				// SCHED_FIFO would starve it.
				nap(200000);
				return;
			}
		}
		nap(20000);
	}
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void) {
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

// jit returns a uniformly random offset in [-j/2, +j/2] ns.
static int64_t jit(int64_t j) {
	if (j <= 0)
		return 0;
	return (int64_t)(xorshift() % (uint64_t)(j + 1)) - j / 2;
}

// pct returns the upper bound, in us, of the bucket that holds the p-th
// fraction of the edges.
static int64_t pct(double p) {
	int64_t want = (int64_t)(p * (double)st.edges + 0.999999), seen = 0;
	for (int i = 0; i < HIST; i++) {
		seen += st.hist[i];
		if (seen >= want)
			return i + 1;
	}
	return HIST;
}

static void usage(void) {
	fprintf(stderr, "usage: responder -line SYSFSDIR -dir DIR [-cpu N] [-jitter US] [-tgo US] [-values random|walk] [-fault none|noanswer|checksum|stucklow|dht11|slow] [-fault-every N] [-seed N] [-rt PRIO] [-power SYSFSDIR -stop-after N] [-irq NAME] [-poll sleep|yield]\n");
	exit(2);
}

int main(int argc, char **argv) {
	const char *line = NULL, *dir = NULL, *values = "random", *fault = "none", *power = NULL;
	long stop_after = 0;
	int cpu = 1, rtprio = 0;
	long fault_every = 1;
	int64_t jitter = 0, tgo = 30000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "-line"))
			line = v;
		else if (!strcmp(a, "-dir"))
			dir = v;
		else if (!strcmp(a, "-cpu"))
			cpu = atoi(v);
		else if (!strcmp(a, "-jitter"))
			jitter = atoll(v) * 1000;
		else if (!strcmp(a, "-tgo"))
			tgo = atoll(v) * 1000;
		else if (!strcmp(a, "-values"))
			values = v;
		else if (!strcmp(a, "-fault"))
			fault = v;
		else if (!strcmp(a, "-fault-every"))
			fault_every = atol(v);
		else if (!strcmp(a, "-seed"))
			rng = strtoull(v, NULL, 10) | 1;
		else if (!strcmp(a, "-rt"))
			rtprio = atoi(v);
		else if (!strcmp(a, "-power"))
			power = v;
		else if (!strcmp(a, "-stop-after"))
			stop_after = atol(v);
		else if (!strcmp(a, "-irq"))
			irq_name = v;
		else if (!strcmp(a, "-poll") && (!strcmp(v, "sleep") || !strcmp(v, "yield")))
			poll_yield = !strcmp(v, "yield");
		else
			usage();
	}
	if (!line || !dir || fault_every < 1)
		usage();
	if (strcmp(values, "random") && strcmp(values, "walk"))
		usage();
	if (strcmp(fault, "none") && strcmp(fault, "noanswer") && strcmp(fault, "checksum") &&
	    strcmp(fault, "stucklow") && strcmp(fault, "dht11") && strcmp(fault, "slow"))
		usage();

	char path[512];
	snprintf(path, sizeof path, "%s/value", line);
	if ((fd_value = open(path, O_RDONLY)) < 0) {
		perror(path);
		return 1;
	}
	snprintf(path, sizeof path, "%s/pull", line);
	if ((fd_pull = open(path, O_WRONLY)) < 0) {
		perror(path);
		return 1;
	}
	if (power) {
		snprintf(path, sizeof path, "%s/value", power);
		if ((fd_power = open(path, O_RDONLY)) < 0) {
			perror(path);
			return 1;
		}
	}
	char next_path[512], sent_path[512];
	snprintf(next_path, sizeof next_path, "%s/next", dir);
	snprintf(sent_path, sizeof sent_path, "%s/sent", dir);
	FILE *sent = fopen(sent_path, "a");
	if (!sent) {
		perror(sent_path);
		return 1;
	}

	int shared = sysconf(_SC_NPROCESSORS_ONLN) < 2;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0) {
		perror("responder: sched_setaffinity");
		return 1;
	}
	// -rt: SCHED_FIFO for the frame only. Waiting for the start pulse and
	// the release stays at normal priority, so the reader that drives the
	// line always gets a CPU (on a one-CPU guest it shares the responder's).
	struct sched_param rt = {.sched_priority = rtprio}, normal = {.sched_priority = 0};
	if (rtprio > 0 && (sched_setscheduler(0, SCHED_FIFO, &rt) != 0 || sched_setscheduler(0, SCHED_OTHER, &normal) != 0)) {
		perror("responder: sched_setscheduler");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	pull(1); // the bus idles high
	int rh = 450, t = 215;
	long seq = 0;
	while (!stop) {
		seq++;
		if (!strcmp(values, "random")) {
			rh = (int)(xorshift() % 1001);
			t = (int)(xorshift() % 1201) - 400;
		} else {
			rh += (int)(xorshift() % 3) - 1;
			t += (int)(xorshift() % 3) - 1;
			rh = rh < 300 ? 300 : rh > 700 ? 700 : rh;
			t = t < 150 ? 150 : t > 300 ? 300 : t;
		}
		int faulty = strcmp(fault, "none") && seq % fault_every == 0;
		int dht11 = faulty && !strcmp(fault, "dht11");
		if (dht11)
			rh -= rh % 10, t -= t % 10;
		// DIR/next through a temporary file and a rename: the reader never
		// sees half a line.
		char tmp[600];
		snprintf(tmp, sizeof tmp, "%s.tmp", next_path);
		FILE *nf = fopen(tmp, "w");
		if (!nf || fprintf(nf, "%ld %d %d\n", seq, rh, t) < 0 || fclose(nf) != 0 || rename(tmp, next_path) != 0) {
			perror("responder: writing next");
			return 1;
		}

		// Idle: the line is high; the start pulse lasts >= 1 ms, so a look
		// every 100 us sees it without burning the CPU.
		while (!stop && level()) {
			power_check();
			nap(100000);
		}
		if (stop)
			break;
		int64_t low_at = now_ns();
		// The host drives low: busy-wait for the release.
		int64_t limit = low_at + 50 * 1000000LL;
		while (!stop && !level() && now_ns() < limit)
			;
		if (stop)
			break;
		int64_t rel = now_ns();
		if (rel >= limit) {
			st.missed_release++;
			continue;
		}
		st.frames++;
		// Tgo. The line reads high as soon as the kernel has made it an
		// input, before the ioctl has requested the edge interrupt (which
		// starts the interrupt's thread). On a one-CPU guest the reader
		// needs this CPU to get there, so the responder waits, at normal
		// priority, until the interrupt exists and Tgo has passed: a real
		// sensor needs no CPU of the host's. With a CPU of its own the
		// responder spins through Tgo, as the sensor would, and the
		// capture sees what it sees.
		int64_t d = rel + tgo;
		if (shared) {
			armed();
			if (poll_yield) {
				while (now_ns() < d)
					sched_yield();
			} else {
				struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
			if (now_ns() > d)
				d = now_ns();
		}
		st.tgo_sum += d - rel;
		if (d - rel > st.tgo_max)
			st.tgo_max = d - rel;
		if (rtprio > 0)
			sched_setscheduler(0, SCHED_FIFO, &rt);

		uint8_t b[5];
		unsigned traw = t < 0 ? (unsigned)(-t) | 0x8000 : (unsigned)t;
		if (dht11) {
			b[0] = (uint8_t)(rh / 10);
			b[1] = 0;
			b[2] = (uint8_t)(t / 10);
			b[3] = 0;
		} else {
			b[0] = (uint8_t)(rh >> 8);
			b[1] = (uint8_t)rh;
			b[2] = (uint8_t)(traw >> 8);
			b[3] = (uint8_t)traw;
		}
		b[4] = (uint8_t)(b[0] + b[1] + b[2] + b[3]);
		if (faulty && !strcmp(fault, "checksum"))
			b[4] ^= 0x10;

		power_check();
		if (off_at >= 0 || (stop_after > 0 && since_on >= stop_after)) {
			faulty = 1; // unpowered, or stuck until a power cycle
			goto sent;
		}
		since_on++;
		if (faulty && !strcmp(fault, "noanswer"))
			goto sent;
		// rise delays every rising edge for the "slow" fault: a weak or
		// missing pull-up takes that long to lift the line.
		int64_t rise = faulty && !strcmp(fault, "slow") ? 24000 : 0;
#define W(us) ((int64_t)(us) * 1000 + jit(jitter))
		at(d, 0); // the sensor answers: low
		if (faulty && !strcmp(fault, "stucklow")) {
			at(d + 20 * 1000000LL, 1); // held low for 20 ms, then let go
			goto sent;
		}
		d += W(80);
		at(d + rise, 1);
		d += W(80);
		at(d, 0);
		for (int i = 0; i < 40; i++) {
			int bit = (b[i / 8] >> (7 - i % 8)) & 1;
			d += W(50);
			at(d + rise, 1);
			d += bit ? W(70) : (dht11 ? W(24) : W(26));
			at(d, 0);
		}
		d += W(50);
		at(d + rise, 1); // released: the bus pulls high
#undef W
	sent:
		if (rtprio > 0)
			sched_setscheduler(0, SCHED_OTHER, &normal);
		fprintf(sent, "%ld %d %d%s\n", seq, rh, t, faulty ? " fault" : "");
		fflush(sent);
	}
	double mean = st.edges ? (double)st.sum / st.edges / 1000 : 0;
	if (fd_power >= 0)
		printf("responder: %ld power cycles seen\n", cycles);
	printf("responder: %lld frames, %lld edges, write late by mean %.1f us, p99 %lld us, p99.9 %lld us, max %.1f us; answer %s %.0f us (max %.0f us) after the release; %lld edges 10 us or more late; %lld start pulses without a release\n",
	       (long long)st.frames, (long long)st.edges, mean, (long long)pct(0.99), (long long)pct(0.999),
	       (double)st.max / 1000, shared ? "slept, mean" : "spun, mean", st.frames ? (double)st.tgo_sum / st.frames / 1000 : 0, (double)st.tgo_max / 1000,
	       (long long)(st.edges - (st.hist[0] + st.hist[1] + st.hist[2] + st.hist[3] + st.hist[4] + st.hist[5] + st.hist[6] + st.hist[7] + st.hist[8] + st.hist[9])),
	       (long long)st.missed_release);
	return 0;
}
