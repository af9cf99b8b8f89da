# image/image.mk: the SD-card image and its boot test. Included by the
# top-level Makefile (which defines VERSION, GO and build-arm64).
#
#   make image-deps   Debian packages the build needs; binfmt_misc for arm64
#   make image        build/sensord-$(VERSION)-arm64.{img,img.xz,sha256,manifest}
#   make image-test   boot that image under qemu and prove it works
#
# All three need root (apt-get, binfmt_misc, chroot). The Debian base root
# filesystem is cached outside the repo, in $(IMAGE_CACHE): the first build
# takes 12-15 min more than the next ones. See image/README.md.

IMAGE_CACHE ?= /var/cache/sensord-image
IMAGE_NAME  := sensord-$(VERSION)-arm64
IMAGE_FILE  := build/$(IMAGE_NAME).img
# openssh-client: the boot test's key pairs (ssh-keygen) and its logins (ssh).
IMAGE_DEBS  := mmdebstrap qemu-user-static binfmt-support qemu-system-arm \
               dosfstools mtools e2fsprogs fdisk xz-utils libfaketime arch-test \
               openssh-client
# Seconds after start-up when the test's simulated sensor hangs.
IMAGE_TEST_HANG ?= 100s

.PHONY: image image-deps image-test

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
