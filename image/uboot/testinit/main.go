// Command testinit is the /init of the initramfs that image/uboot/test.sh
// puts in a trial slot to stand for "an initramfs that panics": it says
// so on the console and exits, and the kernel panics ("Attempted to kill
// init"), then reboots after cmdline.txt's panic=.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sensord-testinit: this initramfs exits on purpose; the kernel panics now")
	os.Exit(1)
}
