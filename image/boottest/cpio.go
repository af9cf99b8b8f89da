package main

import (
	"bytes"
	"fmt"
	"strconv"
)

// newc archives (cpio -H newc), as the kernel unpacks an initramfs: a
// 110-byte header of "070701" and thirteen 8-digit hex fields, the name
// with its NUL, the data, each padded to four bytes; "TRAILER!!!" ends
// an archive.
const (
	newcMagic   = "070701"
	newcHeader  = 110
	newcTrailer = "TRAILER!!!"
)

// Fields of a newc header, by index after the magic.
const (
	newcFileSize = 6
	newcNameSize = 11
)

func pad4(n int) int { return (n + 3) &^ 3 }

// restampInitramfs gives the file name in the first archive of an
// initramfs (the uncompressed one image/ab.sh puts in front of Debian's)
// the content data, and returns the whole initramfs with it; the
// archives after the first are kept as they are.
func restampInitramfs(initrd []byte, name string, data []byte) ([]byte, error) {
	var out bytes.Buffer
	found := false
	at := 0
	for {
		if at+newcHeader > len(initrd) || string(initrd[at:at+6]) != newcMagic {
			return nil, fmt.Errorf("initramfs: no newc header at byte %d", at)
		}
		field := func(i int) (int, error) {
			s := string(initrd[at+6+8*i : at+6+8*(i+1)])
			n, err := strconv.ParseUint(s, 16, 32)
			return int(n), err
		}
		size, err1 := field(newcFileSize)
		nameSize, err2 := field(newcNameSize)
		if err1 != nil || err2 != nil || nameSize < 1 {
			return nil, fmt.Errorf("initramfs: bad newc header at byte %d", at)
		}
		nameAt := at + newcHeader
		dataAt := pad4(nameAt + nameSize)
		end := pad4(dataAt + size)
		if end > len(initrd) {
			return nil, fmt.Errorf("initramfs: entry at byte %d runs past the end", at)
		}
		entry := string(initrd[nameAt : nameAt+nameSize-1])
		if entry == name {
			found = true
			hdr := []byte(string(initrd[at:nameAt]))
			copy(hdr[6+8*newcFileSize:], fmt.Sprintf("%08X", len(data)))
			out.Write(hdr)
			out.Write(initrd[nameAt:dataAt])
			out.Write(data)
			out.Write(make([]byte, pad4(len(data))-len(data)))
		} else {
			out.Write(initrd[at:end])
		}
		at = end
		if entry == newcTrailer {
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("initramfs: no %s in its first archive", name)
	}
	out.Write(initrd[at:])
	return out.Bytes(), nil
}

// newcEntry is one file of an archive newcArchive writes.
type newcEntry struct {
	name      string
	mode      uint32 // type and permission bits, as stat's st_mode
	rdevMajor uint32 // a device node's numbers
	rdevMinor uint32
	data      []byte
}

// newcArchive is an uncompressed newc archive of entries, owned by root.
func newcArchive(entries []newcEntry) []byte {
	var b bytes.Buffer
	put := func(ino int, e newcEntry) {
		fmt.Fprintf(&b, "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			newcMagic, ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
		b.WriteString(e.name)
		b.WriteByte(0)
		b.Write(make([]byte, pad4(b.Len())-b.Len()))
		b.Write(e.data)
		b.Write(make([]byte, pad4(b.Len())-b.Len()))
	}
	for i, e := range entries {
		put(i+1, e)
	}
	put(0, newcEntry{name: newcTrailer})
	return b.Bytes()
}
