# boot.cmd: the sensord A/B chooser, run by U-Boot from the boot partition
# (boot.scr, made with mkimage -T script). It picks the root slot and that
# kernel of that slot, initramfs and device tree together, and counts the boots
# of a trial slot before the kernel is loaded, so a trial whose kernel is
# not one, panics, or never reaches userspace has spent its boot when the
# board comes back. image/uboot/README.md has the layout and the rules.
#
# The slot state /sensord/state is SlotState of package update, written only
# by sensorctl; only committed, trial and tries are imported from it.
# /sensord/boots ("boots=N", boots the trial took) is written only
# here; sensorctl removes it when it installs a trial (missing: 0 boots).

setenv sd_dev "${devtype} ${devnum}:${distro_bootpart}"
# sd_addr: room for the small files (state, boots, sizes, cmdline.txt),
# used only before the kernel is loaded: on a Pi it lies inside the Image.
setenv sd_addr ${scriptaddr}

# A trial boot turns the kernel's own hang detectors into panics, and
# cmdline.txt's panic= then resets the board: a trial kernel that locks up
# a CPU, stalls RCU, oopses or leaves a task stuck (a driver waiting on
# hardware that never answers) before systemd arms the hardware watchdog
# has spent its boot, and the next one rolls it back. sensorctl turns
# them off again when the trial commits (update.TrialPanics, the same list).
setenv trial_args "softlockup_panic=1 nmi_watchdog=panic hung_task_panic=1 oops=panic sysctl.kernel.panic_on_rcu_stall=1"

# Without /sensord/state (a card whose slot state is on the data
# partition) the boot files of slot A boot and the command line names no slot:
# the initramfs chooses the root slot and counts its tries itself.
setenv committed A
setenv trial
setenv tries 0
setenv chooser uboot
if load ${sd_dev} ${sd_addr} /sensord/state; then
	env import -t ${sd_addr} ${filesize} committed trial tries
else
	echo "sensord-boot: no /sensord/state: booting the boot files of slot A, the initramfs chooses the root slot"
	setenv chooser initramfs
fi
if test "${committed}" != A && test "${committed}" != B; then
	echo "sensord-boot: committed slot '${committed}' is neither A nor B: booting slot A"
	setenv committed A
fi
if test -n "${trial}" && test "${trial}" != A && test "${trial}" != B; then
	echo "sensord-boot: trial slot '${trial}' is neither A nor B: no trial"
	setenv trial
fi
setenv n_ok
for n in 0 1 2 3 4 5 6 7 8 9; do
	if test "${tries}" = ${n}; then setenv n_ok 1; fi
done
if test -z "${n_ok}"; then setenv tries 0; fi

# Boots the trial took. A counter that is there but does not read as one
# digit counts as used up: the committed slot boots.
setenv boots 0
if test -n "${trial}"; then
	if load ${sd_dev} ${sd_addr} /sensord/boots; then
		setenv boots x
		env import -t ${sd_addr} ${filesize} boots
	fi
	setenv n_ok
	for n in 0 1 2 3 4 5 6 7 8 9; do
		if test "${boots}" = ${n}; then setenv n_ok 1; fi
	done
	if test -z "${n_ok}"; then
		echo "sensord-boot: /sensord/boots is unreadable: the trial counts as used up"
		setenv boots ${tries}
	fi
fi

setenv slot ${committed}
setenv mode committed
setenv failed
if test -n "${trial}"; then
	if test ${boots} -lt ${tries}; then
		setexpr boots ${boots} + 1
		env export -t ${sd_addr} boots
		if fatwrite ${devtype} ${devnum}:${distro_bootpart} ${sd_addr} /sensord/boots ${filesize}; then
			setenv slot ${trial}
			setenv mode trial
			echo "sensord-boot: slot ${trial} on trial, boot ${boots} of ${tries}"
		else
			echo "sensord-boot: cannot write /sensord/boots: trial of slot ${trial} not taken, booting slot ${committed}"
		fi
	else
		setenv mode rolled-back
		setenv failed ${trial}
		echo "sensord-boot: trial of slot ${trial} used ${boots} of ${tries} boots: rolling back to slot ${committed}"
	fi
fi

if test "${slot}" = B; then setenv dir /slot-b; else setenv dir /slot-a; fi

# The sizes sensorctl wrote with the files (hex, as filesize): a file on
# the FAT of another length (torn, truncated) is not booted, since a
# truncated Image starts and then hangs where no panic= can reboot it.
setenv vmlinuz_size
setenv initrd_size
if load ${sd_dev} ${sd_addr} ${dir}/sizes; then
	env import -t ${sd_addr} ${filesize} vmlinuz_size initrd_size
else
	echo "sensord-boot: no ${dir}/sizes: the lengths of its files are not checked"
fi
# cmdline.txt as the kernel command line: NUL-terminated, read as a string.
# Read before the kernel is loaded: on a Pi sd_addr (scriptaddr, 0x2400000)
# lies inside a 51 MB Image loaded at kernel_addr_r (0x80000), so a read
# there afterwards would overwrite the kernel (its BTF: no module loads).
setenv bootargs
if load ${sd_dev} ${sd_addr} /cmdline.txt; then
	setexpr nul ${sd_addr} + ${filesize}
	mw.b ${nul} 0 1
	setexpr.s bootargs *${sd_addr}
fi

setenv k_addr ${kernel_addr_r}
setenv go
if load ${sd_dev} ${k_addr} ${dir}/vmlinuz; then
	setenv go 1
	if test -n "${vmlinuz_size}" && test "${filesize}" != "${vmlinuz_size}"; then
		echo "sensord-boot: ${dir}/vmlinuz is 0x${filesize} bytes, not 0x${vmlinuz_size}: not booting it"
		setenv go
	fi
fi
if test -n "${go}"; then
	# Addresses: the kernel at kernel_addr_r of U-Boot, then the device tree and
	# the initramfs above its end and the room it takes when it runs (its BSS;
	# booti leaves a 2 MiB-aligned, position-independent Image where it is).
	# On a Pi the default ramdisk_addr_r lies inside a 51 MB Image.
	setexpr fdt_addr ${k_addr} + ${filesize}
	setexpr fdt_addr ${fdt_addr} + 0x4000000
	setexpr fdt_addr ${fdt_addr} / 0x200000
	setexpr fdt_addr ${fdt_addr} * 0x200000
	setexpr rd_addr ${fdt_addr} + 0x200000
	setenv fdt ${fdtcontroladdr}
	if test -n "${fdtfile}"; then
		if load ${sd_dev} ${fdt_addr} ${dir}/dtbs/${fdtfile}; then
			setenv fdt ${fdt_addr}
		else
			echo "sensord-boot: no ${dir}/dtbs/${fdtfile}: booting with the device tree of the firmware"
		fi
	fi
	setenv go
	if load ${sd_dev} ${rd_addr} ${dir}/initrd.img; then
		setenv go 1
		if test -n "${initrd_size}" && test "${filesize}" != "${initrd_size}"; then
			echo "sensord-boot: ${dir}/initrd.img is 0x${filesize} bytes, not 0x${initrd_size}: not booting it"
			setenv go
		fi
	fi
fi
if test -n "${go}"; then
	setenv rd_size ${filesize}
	if test "${chooser}" = uboot; then
		setenv bootargs "${bootargs} sensord.slot=${slot} sensord.mode=${mode}"
		if test "${mode}" = trial; then setenv bootargs "${bootargs} ${trial_args}"; fi
		if test -n "${failed}"; then setenv bootargs "${bootargs} sensord.failed=${failed}"; fi
	fi
	# Where they were loaded: no copy of 38 MB to the top of RAM.
	setenv initrd_high 0xffffffffffffffff
	setenv fdt_high 0xffffffffffffffff
	echo "sensord-boot: booting slot ${slot} (${mode}): ${dir}/vmlinuz"
	booti ${k_addr} ${rd_addr}:${rd_size} ${fdt}
fi
# Only a kernel that did not start gets here (not an arm64 Image, zeros,
# a length other than its sizes file says, a missing file). Reset: the boot counted, so the next one
# either tries again or rolls back.
echo "sensord-boot: slot ${slot} (${dir}) did not boot: resetting"
reset
