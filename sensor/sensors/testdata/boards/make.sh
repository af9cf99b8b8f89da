#!/bin/sh
# make.sh: writes the recorded /proc, /sys and /dev layouts the GPIO header
# lookup is tested against (header_test.go), one directory per board.
#
# Device-tree paths and compatibles are those of Debian's device trees
# (linux-base-7.3.4+deb13-arm64: dtb/broadcom/bcm2837-rpi-3-b.dtb,
# bcm2837-rpi-zero-2-w.dtb, bcm2711-rpi-4-b.dtb, bcm2712-rpi-5-b.dtb, read
# with dtc -I dtb -O dts); the chips' labels are their drivers' names
# (pinctrl-bcm2835, pinctrl-bcm2711, pinctrl-rp1, raspberrypi-exp-gpio, and
# gpio-brcmstb's per-bank chips named after their device); sysfs device
# paths follow each node's translated address. chips.txt is what the chips
# answer to GPIO_GET_CHIPINFO, in gpiodetect's format.
#
# pi3b is recorded: the image booted under qemu -M raspi3b with Debian's
# bcm2837-rpi-3-b.dtb (make board-test) showed exactly these two chips, their
# /sys/bus/gpio/devices links and of_node targets, and sensord's line
# "gpiochip0:4 (GPIO4, pinctrl-bcm2835)" (the label from the chip itself).
set -eu
cd "$(dirname "$0")"

board() { # DIR COMPATIBLE MODEL: a fresh layout
	rm -rf "$1"
	mkdir -p "$1/sys/firmware/devicetree/base" "$1/proc" "$1/dev" "$1/sys/bus/gpio/devices"
	[ -z "$2" ] || printf "$2\0" > "$1/sys/firmware/devicetree/base/compatible"
	printf '%s\0' "$3" > "$1/sys/firmware/devicetree/base/model"
	ln -s ../sys/firmware/devicetree/base "$1/proc/device-tree"
	: > "$1/chips.txt"
}

chip() { # DIR N DEVPATH NODE NODECOMPAT LABEL LINES
	dir=$1 n=gpiochip$2 dev=$3 node=$4
	mkdir -p "$dir/sys/devices/$dev/$n" "$dir/sys/firmware/devicetree/base$node"
	[ -e "$dir/sys/firmware/devicetree/base$node/compatible" ] || printf "$5\0" > "$dir/sys/firmware/devicetree/base$node/compatible"
	up=$(echo "devices/$dev/$n" | sed 's|[^/]*|..|g')
	ln -s "$up/firmware/devicetree/base$node" "$dir/sys/devices/$dev/$n/of_node"
	ln -s "../../../devices/$dev/$n" "$dir/sys/bus/gpio/devices/$n"
	: > "$dir/dev/$n"
	echo "$n [$6] ($7 lines)" >> "$dir/chips.txt"
}

board pi3b 'raspberrypi,3-model-b\0brcm,bcm2837' 'Raspberry Pi 3 Model B Rev 1.2'
chip pi3b 0 platform/soc/3f200000.gpio /soc/gpio@7e200000 'brcm,bcm2835-gpio' pinctrl-bcm2835 54
chip pi3b 1 platform/firmware:rpi-firmware/firmware:rpi-firmware:gpio /firmware/rpi-firmware/gpio 'raspberrypi,firmware-gpio' raspberrypi-exp-gpio 8

board zero2w 'raspberrypi,model-zero-2-w\0brcm,bcm2837' 'Raspberry Pi Zero 2 W Rev 1.0'
chip zero2w 0 platform/soc/3f200000.gpio /soc/gpio@7e200000 'brcm,bcm2835-gpio' pinctrl-bcm2835 54

board pi4b 'raspberrypi,4-model-b\0brcm,bcm2711' 'Raspberry Pi 4 Model B Rev 1.4'
chip pi4b 0 platform/soc/fe200000.gpio /soc/gpio@7e200000 'brcm,bcm2711-gpio' pinctrl-bcm2711 58
chip pi4b 1 platform/firmware:rpi-firmware/firmware:rpi-firmware:gpio /firmware/rpi-firmware/gpio 'raspberrypi,firmware-gpio' raspberrypi-exp-gpio 8

# The Pi 5: the SoC's brcmstb banks (one chip per bank) probe before the
# RP1, which sits behind PCIe; the header is the RP1's chip, the last one.
p5() {
	board "$1" "$2" "$3"
	chip "$1" 0 platform/soc@107c000000/107d508500.gpio /soc@107c000000/gpio@7d508500 'brcm,bcm7445-gpio\0brcm,brcmstb-gpio' 107d508500.gpio 32
	chip "$1" 1 platform/soc@107c000000/107d508500.gpio /soc@107c000000/gpio@7d508500 'brcm,bcm7445-gpio\0brcm,brcmstb-gpio' 107d508500.gpio 22
	chip "$1" 2 platform/soc@107c000000/107d517c00.gpio /soc@107c000000/gpio@7d517c00 'brcm,bcm7445-gpio\0brcm,brcmstb-gpio' 107d517c00.gpio 17
	chip "$1" 3 platform/soc@107c000000/107d517c00.gpio /soc@107c000000/gpio@7d517c00 'brcm,bcm7445-gpio\0brcm,brcmstb-gpio' 107d517c00.gpio 6
}
p5 pi5 'raspberrypi,5-model-b\0brcm,bcm2712' 'Raspberry Pi 5 Model B Rev 1.0'
chip pi5 4 platform/axi/1000120000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/1f000d0000.pinctrl /axi/pcie@1000120000/pci@0,0/dev@0,0/pci-ep-bus@1/pinctrl@400d0000 'raspberrypi,rp1-gpio' pinctrl-rp1 54
# The same Pi 5 before pinctrl-rp1 (a module) is loaded.
p5 pi5-no-rp1 'raspberrypi,5-model-b\0brcm,bcm2712' 'Raspberry Pi 5 Model B Rev 1.0'

# A CM4 whose device tree has no compatible: found by its model string.
board cm4-model '' 'Raspberry Pi Compute Module 4 Rev 1.0'
chip cm4-model 0 platform/firmware:rpi-firmware/firmware:rpi-firmware:gpio /firmware/rpi-firmware/gpio 'raspberrypi,firmware-gpio' raspberrypi-exp-gpio 8
chip cm4-model 1 platform/soc/fe200000.gpio /soc/gpio@7e200000 'brcm,bcm2711-gpio' pinctrl-bcm2711 58

# A Pi 4 whose chips have no device-tree node in sysfs: found by label.
board pi4b-no-node 'raspberrypi,4-model-b\0brcm,bcm2711' 'Raspberry Pi 4 Model B Rev 1.4'
chip pi4b-no-node 0 platform/firmware:rpi-firmware/firmware:rpi-firmware:gpio /firmware/rpi-firmware/gpio 'raspberrypi,firmware-gpio' raspberrypi-exp-gpio 8
chip pi4b-no-node 1 platform/soc/fe200000.gpio /soc/gpio@7e200000 'brcm,bcm2711-gpio' pinctrl-bcm2711 58
rm pi4b-no-node/sys/devices/platform/*/*/gpiochip0/of_node pi4b-no-node/sys/devices/platform/soc/*/gpiochip1/of_node

# Not a Pi: two chips, neither known.
board other 'vendor,some-board\0vendor,some-soc' 'Some Board'
chip other 0 platform/soc/1000.gpio /soc/gpio@1000 'vendor,some-gpio' some-gpio 32
chip other 1 platform/soc/2000.gpio /soc/gpio@2000 'vendor,some-gpio' some-gpio 32
