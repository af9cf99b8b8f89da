#!/bin/busybox sh
# init.sh: PID 1 of the kernel test's guest (image/kerneltest/README.md).
# Loads gpio-sim, makes a bank that stands in for the Pi's header (28
# lines, so GPIO4 is line 4 of the only chip, as on a Pi; on arm64 the
# bank comes from the device tree, SIM=dt), then runs each case of
# /etc/kerneltest.conf: the responder on CPU 1 plays the DHT22 on line 4,
# the reader (the shipped capture code, sensord itself, or on arm64 the
# kernel's dht11 driver on line 5) runs on CPU 0. Every line the host acts on starts with "kerneltest:" or
# "kernel-test:"; the guest powers off at the end.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
ip link set lo up
hostname kerneltest
. /etc/kerneltest.conf

say() { echo "kerneltest: $*"; }
fail() { say "FAILED: $*"; poweroff -f; }

say "kernel $(uname -r), $(nproc) CPUs, $(grep -c ^processor /proc/cpuinfo) online"
for m in $MODULES; do
	insmod /lib/modules/$m.ko || fail "insmod $m"
done
if [ "$SIM" = dt ]; then
	# The bank is in the device tree (arm64.dtsi): gpio-sim probed it when
	# it was loaded, and dht11, loaded after it, holds its line 5.
	line=$(ls -d /sys/devices/platform/*/gpiochip*/sim_gpio4 2>/dev/null | head -n 1)
	[ -w "$line/pull" ] || fail "no gpio-sim bank from the device tree: $(dmesg | grep -i gpio | tail -n 3 | tr '\n' ' ')"
	chip=${line%/sim_gpio4}
	dev=$(basename ${chip%/*})
	chip=$(basename $chip)
else
	mount -t configfs configfs /sys/kernel/config || fail "mount configfs"
	sim=/sys/kernel/config/gpio-sim/header
	mkdir $sim $sim/bank0 || fail "gpio-sim: mkdir"
	echo 28 > $sim/bank0/num_lines
	echo 1 > $sim/live || fail "gpio-sim: live"
	dev=$(cat $sim/dev_name)
	chip=$(cat $sim/bank0/chip_name)
	line=/sys/devices/platform/$dev/$chip/sim_gpio4
	[ -w $line/pull ] || fail "no $line/pull"
fi
say "gpio-sim: $dev, /dev/$chip, line 4 at $line"

# wait_for FILE TENTHS: until FILE exists, at most TENTHS tenths of a second.
wait_for() {
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ $i -gt "$2" ] && return 1
		usleep 100000
	done
}

# run_case NAME HOG RESPONDER-ARGS -- READER-ARGS: the responder plays on
# line 4, or on RLINE where that is set.
run_case() {
	name=$1 hog=$2
	shift 2
	rargs=""
	while [ "$1" != "--" ]; do rargs="$rargs $1"; shift; done
	shift
	rm -rf /run/kt && mkdir -p /run/kt
	/bin/responder -line ${RLINE:-$line} -dir /run/kt -cpu $RESPONDER_CPU $RESPONDER_ARGS $rargs &
	rpid=$!
	wait_for /run/kt/next 50 || fail "$name: the responder did not start"
	hpid=""
	if [ "$hog" = hog ]; then
		# One spinning shell per CPU but the responder's: the reader's.
		taskset -c $READER_CPU sh -c 'while :; do :; done' &
		hpid=$!
	fi
	spid=""
	case $name in
	sensord)
		taskset -c $READER_CPU /bin/sensord -sensor dht22 -capture cdev -pin GPIO4 -listen 127.0.0.1:8080 > /run/sensord.log 2>&1 &
		spid=$!
		;;
	power)
		taskset -c $READER_CPU /bin/sensord -sensor dht22 -capture cdev -pin GPIO4 -power-pin GPIO17 -listen 127.0.0.1:8080 > /run/sensord.log 2>&1 &
		spid=$!
		;;
	esac
	say "case $name: responder$RESPONDER_ARGS$rargs"
	taskset -c $READER_CPU /bin/sensors.test -test.run '^TestKernel$' -kernel.case "$name" -kernel.dir /run/kt "$@"
	rc=$?
	[ -n "$hpid" ] && kill $hpid
	if [ -n "$spid" ]; then
		kill -TERM $spid
		wait $spid
		say "sensord: $(grep -c . /run/sensord.log) log lines, of which $(grep -c 'level=WARN\|level=ERROR' /run/sensord.log) WARN/ERROR; first lines:"
		head -n 5 /run/sensord.log | sed 's/^/kerneltest:   /'
		grep 'level=WARN\|level=ERROR\|power' /run/sensord.log | head -n 8 | sed 's/^/kerneltest:   /'
	fi
	kill -TERM $rpid
	wait $rpid
	say "case $name: reader exit $rc"
}

# others: what sensord says and does when another program holds its line
# at start-up, when the pin is exported through sysfs, and when the chip
# goes away and comes back. Each step prints "kerneltest: others: STEP:
# ok" or "...: FAILED: what it saw"; the host fails the run on FAILED.
# expect STEP WHAT PATH PATTERN TENTHS: until sensord's PATH answers with
# PATTERN (grep -E), at most TENTHS tenths of a second.
expect() {
	i=0
	while [ $i -lt "$5" ]; do
		body=$(wget -q -O - "http://127.0.0.1:8080$3" 2>/dev/null)
		if echo "$body" | grep -qE "$4"; then
			say "others: $1: ok: $2"
			return 0
		fi
		i=$((i + 1))
		usleep 100000
	done
	say "others: $1: FAILED: $2: $3 says $(echo "$body" | head -c 400 | tr '\n' ' ')"
	return 1
}

# healthz_sensor: the sensor's verdict from /healthz, in one line.
healthz_sensor() {
	wget -q -O - http://127.0.0.1:8080/healthz 2>/dev/null | grep -oE '"(state|summary|last_error)":"([^"\\]|\\.)*"' | tr '\n' ' '
}

start_sensord() {
	taskset -c $READER_CPU /bin/sensord -sensor dht22 -capture cdev -pin GPIO4 -listen 127.0.0.1:8080 > "$1" 2>&1 &
	spid=$!
}

stop_sensord() {
	kill -TERM $spid 2>/dev/null
	wait $spid
}

others() {
	rm -rf /run/kt && mkdir -p /run/kt
	/bin/responder -line $line -dir /run/kt -cpu $RESPONDER_CPU $RESPONDER_ARGS -values walk > /dev/null &
	rpid=$!

	# 1. Another program holds the line at start-up.
	taskset -c $READER_CPU /bin/sensors.test -test.run '^TestKernel$' -kernel.case others -kernel.mode hold -kernel.dir /run/kt -kernel.duration 8s > /dev/null &
	hold=$!
	wait_for /run/kt/held 100 || fail "others: the holder did not start"
	start_sensord /run/busy.log
	expect "busy at start-up" "sensord serves and names the holder" /healthz 'in use by \\"kerneltest-holder\\"' 100
	say "others: busy at start-up: $(healthz_sensor)"
	grep -m 1 'line busy' /run/busy.log | sed 's/^/kerneltest:   /'
	wait $hold
	expect "busy, then free" "sensord reads once the holder let go" /api/latest '"temperature"' 150
	stop_sensord

	# 2. The pin is exported through /sys/class/gpio.
	base=""
	for c in /sys/class/gpio/gpiochip*; do
		[ "$(cat $c/ngpio 2>/dev/null)" = 28 ] && base=$(cat $c/base)
	done
	if [ -n "$base" ] && echo $((base + 4)) > /sys/class/gpio/export; then
		start_sensord /run/export.log
		expect "exported" "sensord says the pin is exported" /healthz 'exported through /sys/class/gpio' 100
		say "others: exported: $(healthz_sensor)"
		echo $((base + 4)) > /sys/class/gpio/unexport
		expect "exported, then unexported" "sensord reads once the pin is unexported" /api/latest '"temperature"' 150
		stop_sensord
	else
		say "others: exported: FAILED: no sysfs GPIO export for the gpio-sim chip (base '$base')"
	fi

	# 3. The chip goes away (the bank's live set to 0, the module still
	# in use) and comes back, as a new chip.
	start_sensord /run/gone.log
	expect "running" "sensord reads" /api/latest '"temperature"' 150
	echo 0 > $sim/live
	say "others: chip removed (live 0); rmmod gpio-sim: $(rmmod gpio-sim 2>&1 || echo removed)"
	expect "chip gone" "sensord keeps serving and says the chip went away" /healthz 'went away' 150
	say "others: chip gone: sensord $(kill -0 $spid 2>/dev/null && echo running || echo exited); $(healthz_sensor)"
	echo 1 > $sim/live
	line=/sys/devices/platform/$(cat $sim/dev_name)/$(cat $sim/bank0/chip_name)/sim_gpio4
	kill -TERM $rpid; wait $rpid
	/bin/responder -line $line -dir /run/kt -cpu $RESPONDER_CPU $RESPONDER_ARGS -values walk > /dev/null &
	rpid=$!
	expect "chip back" "sensord reads from the new chip $(cat $sim/bank0/chip_name)" /healthz '"state":"ok"' 300
	say "others: chip back: $(healthz_sensor)"
	grep -v level=INFO /run/gone.log | head -n 4 | sed 's/^/kerneltest:   /'
	stop_sensord
	kill -TERM $rpid 2>/dev/null
	wait $rpid
}

# dht11: the kernel's own DHT11/DHT22 driver (arm64 only), bound from the
# device tree to line 5 of the bank, read through IIO with the responder's
# same settings on that line. Reading it may hang the guest: see
# image/kerneltest/README.md; the host tells that from the kernel's words.
dht11_case() {
	iio=$(grep -l '^dht11$' /sys/bus/iio/devices/iio:device*/name 2>/dev/null | head -n 1)
	if [ -z "$iio" ]; then
		say "arm64-dht11: FAILED: the kernel's dht11 driver did not bind: $(dmesg | grep -i dht11 | tail -n 3 | tr '\n' ' ')"
		return
	fi
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	say "arm64-dht11: bound: $(dirname $iio) (driver $(basename "$(readlink /sys/bus/platform/devices/dht11/driver)"), $(grep -c '' /proc/interrupts) interrupt lines); requested lines of $chip:"
	sed -n "/^$chip:/,/^\$/p" /sys/kernel/debug/gpio 2>/dev/null | grep '(' | grep -v '(<unused>)' | sed 's/^/kerneltest:   /'
	RLINE=${line%4}5
	run_case arm64-dht11 - -irq dht11 -- -kernel.mode iio -kernel.reads $READS -kernel.period $PERIOD
	RLINE=""
}

# cause_of FAULT: the cause sensord must tell for the responder's fault.
cause_of() {
	case $1 in
	noanswer) echo no_answer ;;
	slow) echo bad_signal ;;
	dht11) echo wrong_model ;;
	stucklow) echo stuck_low ;;
	checksum) echo noise ;;
	esac
}

for c in $CASES; do
	case $c in
	fault-*)
		f=${c#fault-}
		run_case $c - -values walk -fault $f -- -kernel.reads $FAULT_READS -kernel.period $FAULT_PERIOD -kernel.want-cause "$(cause_of $f)"
		;;
	best) run_case best - -- -kernel.reads $READS -kernel.period $PERIOD ;;
	jitter10) run_case jitter10 - -jitter 10 -- -kernel.reads $READS -kernel.period $PERIOD ;;
	jitter20) run_case jitter20 - -jitter 20 -- -kernel.reads $READS -kernel.period $PERIOD ;;
	hog) run_case hog hog -- -kernel.reads $READS -kernel.period $PERIOD ;;
	sensord) run_case sensord - -values walk -- -kernel.mode sensord -kernel.duration $SENSORD_TIME ;;
	power)
		# The sensor's VCC on a second line of the bank: it stops answering
		# after 3 frames until sensord cycled its power.
		run_case power - -values walk -power ${line%4}17 -stop-after 3 -- -kernel.mode sensord -kernel.duration 150s -kernel.until-power-cycle
		;;
	others) others ;;
	arm64-ours) run_case arm64-ours - -- -kernel.pin $chip:4 -kernel.reads $READS -kernel.period $PERIOD ;;
	arm64-dht11) dht11_case ;;
	*) say "unknown case $c" ;;
	esac
done
say "done"
poweroff -f
