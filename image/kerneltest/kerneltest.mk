# image/kerneltest/kerneltest.mk: the DHT22 capture against a real kernel.
# Included by the top-level Makefile (which defines GO, GOBUILD and build).
#
#   make kernel-test-deps  Debian packages it needs (only what is missing)
#   make kernel-test       boot Debian's amd64 kernel under qemu (KVM), load
#                          gpio-sim, play a DHT22 on it in real time and read
#                          it with the shipped capture code and with sensord;
#                          then boot Debian's arm64 kernel (qemu's arm64 virt
#                          machine, TCG) and read the same waveforms with the
#                          shipped capture and the kernel's dht11 driver
#
# The kernel packages are downloaded (not installed) into $(KERNEL_CACHE)
# (amd64) and $(KERNEL_CACHE)/arm64 (arm64, with busybox-static:arm64) by
# image/kerneltest/kernel.sh. See image/kerneltest/README.md.

KERNEL_CACHE ?= /var/cache/sensord-kernel
# qemu-system-x86: the guest. busybox-static: the guest's shell and tools.
# gcc, libc6-dev: the static responder. cpio, xz-utils, zstd: the
# initramfs and the kernel's compressed modules. qemu-system-arm,
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, device-tree-compiler: the
# arm64 guest, its responder and its device tree.
KERNEL_DEBS  := qemu-system-x86 busybox-static gcc libc6-dev cpio xz-utils zstd \
	qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross device-tree-compiler
# Reads per capture case and the time between them; SENSORD_FOR is how
# long sensord itself reads at its real 2 s period.
KERNEL_READS  ?= 2000
KERNEL_PERIOD ?= 20ms
SENSORD_FOR   ?= 64s
KERNEL_CASES  ?= best jitter10 jitter20 hog sensord others fault-noanswer fault-slow fault-dht11 fault-stucklow fault-checksum power
# The arm64 boot's cases and reads per case: under TCG, and the kernel's
# driver reads at most every 2 s of guest time; this count keeps the boot
# near a minute. KERNEL_ARM64_CASES= skips the boot.
KERNEL_ARM64_READS ?= 100
KERNEL_ARM64_CASES ?= arm64-ours arm64-dht11

.PHONY: kernel-test kernel-test-deps

kernel-test-deps:
	@missing=""; for p in $(KERNEL_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "kernel-test-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

kernel-test: kernel-test-deps build
	@mkdir -p build/kerneltest
	gcc -static -O2 -Wall -Wextra -Werror -o build/kerneltest/responder image/kerneltest/responder/responder.c
	CGO_ENABLED=0 $(GO) test -c -tags kerneltest -o build/kerneltest/sensors.test ./sensor/sensors
	@mkdir -p build/kerneltest/arm64
	aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o build/kerneltest/arm64/responder image/kerneltest/responder/responder.c
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -c -tags kerneltest -o build/kerneltest/arm64/sensors.test ./sensor/sensors
	image/kerneltest/kernel.sh $(KERNEL_CACHE) >/dev/null
	image/kerneltest/kernel.sh $(KERNEL_CACHE)/arm64 arm64 >/dev/null
	$(GO) run ./image/kerneltest -kernel $(KERNEL_CACHE)/root -busybox /bin/busybox \
		-reads $(KERNEL_READS) -period $(KERNEL_PERIOD) -sensord-for $(SENSORD_FOR) -cases "$(KERNEL_CASES)" \
		-arm64-kernel $(KERNEL_CACHE)/arm64/root -arm64-busybox $(KERNEL_CACHE)/arm64/busybox/bin/busybox \
		-arm64-reads $(KERNEL_ARM64_READS) -arm64-cases "$(KERNEL_ARM64_CASES)"
