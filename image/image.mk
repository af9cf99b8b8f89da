# image/image.mk: the SD-card image and its boot test. Included by the
# top-level Makefile (which defines VERSION, GO and build-arm64).
#
#   make image-deps   Debian packages the build needs; binfmt_misc for arm64
#   make image        build/sensord-$(VERSION)-arm64.{img,img.xz,sha256,manifest,
#                     rpi-imager-manifest}
#   make image-test   boot that image under qemu and prove it works
#   make board-test   boot it as a Raspberry Pi 3 (qemu -M raspi3b), the way
#                     the Pi's firmware would (image/README.md)
#   make update-test  A/B updates under qemu: install, trial, commit, rollback,
#                     refused bundles, a power cut mid-install
#   make uboot-test   the U-Boot slot chooser (image/uboot) under qemu: broken
#                     trial kernels and initramfs roll back after 3 boots
#   make field-test   a card of an earlier release (FIELD_FROM) takes this
#                     version's bundle and moves itself to U-Boot
#
# All of them need root (apt-get, binfmt_misc, chroot). The Debian base root
# filesystem is cached outside the repo, in $(IMAGE_CACHE): the first build
# takes 12-15 min more than the next ones. See image/README.md.

IMAGE_CACHE ?= /var/cache/sensord-image
IMAGE_NAME  := sensord-$(VERSION)-arm64
IMAGE_FILE  := build/$(IMAGE_NAME).img
# openssh-client: the boot test's key pairs (ssh-keygen) and its logins (ssh).
# device-tree-compiler: the Pi 5 I2C overlay (dtc) and its check against the
# device trees (fdtoverlay, fdtget). mosquitto: the host-side broker the
# booted appliance publishes to. squashfs-tools, cpio: the read-only root
# slot and the initrd's A/B scripts. u-boot-qemu, u-boot-tools: the U-Boot
# slot chooser's test (qemu_arm64's u-boot.bin, mkimage).
IMAGE_DEBS  := mmdebstrap qemu-user-static binfmt-support qemu-system-arm \
               dosfstools mtools e2fsprogs fdisk xz-utils libfaketime arch-test \
               openssh-client device-tree-compiler mosquitto squashfs-tools cpio \
               u-boot-qemu u-boot-tools
# Seconds after start-up when the test's simulated sensor hangs.
IMAGE_TEST_HANG ?= 100s

.PHONY: image image-deps image-test board-test update-test uboot-test field-test

# Installs only what is missing; binfmt_misc is mounted and qemu-aarch64
# registered every time (neither survives a reboot).
image-deps:
	@missing=""; for p in $(IMAGE_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "image-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	image/binfmt.sh

IMAGE_BUILD = IMAGE_CACHE=$(IMAGE_CACHE) image/build.sh build $(VERSION) \
	build/sensord-linux-arm64 systemd/sensord.service systemd/sensord.socket

image: image-deps build-arm64
	$(IMAGE_BUILD)

# The same image, without the .xz (minutes of compression the boot test does
# not need), then the boot under qemu.
image-test: image-deps build-arm64
	IMAGE_XZ=0 $(IMAGE_BUILD)
	$(GO) run ./image/boottest -image $(IMAGE_FILE) -hang-after $(IMAGE_TEST_HANG)

# The board-level boot: qemu's emulated Raspberry Pi (SoC, SD controller,
# GPIO, mini UART, watchdog) boots the image from the card's FAT the way
# the firmware would (image/boottest/board.go). Separate from image-test:
# the emulated Pi 3 is several times slower than -M virt.
# BOARDS=raspi4b needs qemu 9 or later: image/qemu-backports.sh unpacks
# bookworm-backports' qemu into build/ (not installed).
BOARDS ?= raspi3b
board-test: image-deps build-arm64
	IMAGE_XZ=0 $(IMAGE_BUILD)
	for b in $(BOARDS); do \
		q=qemu-system-aarch64; \
		if [ "$$b" = raspi4b ]; then q=$$(image/qemu-backports.sh build/qemu-backports) || exit 1; fi; \
		$(GO) run ./image/boottest -image $(IMAGE_FILE) -board $$b -qemu $$q || exit 1; \
	done

# The A/B update test: the same image and its bundle, then 21 boots under
# qemu (image/README.md, "make update-test"). The simulated sensor never
# hangs here: a trial must be able to stay healthy.
update-test: image-deps build-arm64
	IMAGE_XZ=0 $(IMAGE_BUILD)
	kver=$$(image/kerneltest/kernel.sh $(KERNEL_CACHE)) && \
	x86=$$(ls $(KERNEL_CACHE)/root/boot/vmlinuz-$$kver $(KERNEL_CACHE)/root/usr/lib/modules/$$kver/vmlinuz 2>/dev/null | head -n 1) && \
	$(GO) run ./image/boottest -update -image $(IMAGE_FILE) -bundle build/$(IMAGE_NAME).update \
		-x86-kernel "$$x86" -hang-after 1000h -timeout 100m

# A card in the field (image/README.md, "make field-test"): the image of
# FIELD_FROM, a release whose firmware loads the kernel itself, built from
# a worktree of that commit with its own build.sh, takes this version's
# bundle with its own sensorctl and initramfs. Not in CI: the earlier
# release's image is a second build.
FIELD_FROM ?= e844234
FIELD_DIR  := build/field-$(FIELD_FROM)
field-test: image-deps build-arm64
	IMAGE_XZ=0 $(IMAGE_BUILD)
	git worktree prune
	test -d $(FIELD_DIR) || git worktree add --detach $(FIELD_DIR) $(FIELD_FROM)
	cd $(FIELD_DIR) && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath \
		-ldflags "-s -w -X main.version=$(FIELD_FROM)" -o build/sensord-linux-arm64 ./cmd/sensord && \
		IMAGE_XZ=0 IMAGE_CACHE=$(IMAGE_CACHE) image/build.sh build $(FIELD_FROM) \
		build/sensord-linux-arm64 systemd/sensord.service systemd/sensord.socket
	$(GO) run ./image/boottest -update -field -image $(FIELD_DIR)/build/sensord-$(FIELD_FROM)-arm64.img \
		-bundle build/$(IMAGE_NAME).update -hang-after 1000h -timeout 60m

# The U-Boot slot chooser (image/uboot/README.md): Debian's U-Boot boots the
# image's kernel and initramfs per slot from a FAT under qemu -M virt; each
# broken trial (zeros, truncated, x86, panicking initramfs) rolls back.
uboot-test: image-deps build-arm64
	IMAGE_XZ=0 $(IMAGE_BUILD)
	image/uboot/test.sh $(IMAGE_FILE) build/uboot-test
