// Command phone plays, in make image-test, the phone a person sets the
// appliance up with: the guest image has no iw, DHCP client, dig or curl,
// so the test carries this one static binary (built for the guest,
// GOARCH=arm64) onto the card's boot partition.
//
//	phone netns PHY NSNAME    move the radio PHY into the network namespace
//	                          /run/netns/NSNAME (what `iw phy PHY set netns
//	                          name NSNAME` does)
//	phone dhcp IFACE          get a DHCP lease on IFACE (DISCOVER, OFFER,
//	                          REQUEST, ACK over a UDP socket bound to it);
//	                          print address=, router= and dns=
//	phone dns SERVER NAME...  ask SERVER for each NAME's IPv4 addresses
//	phone get DNS URL         GET URL (names resolved by DNS), no redirect
//	                          followed; print the status, Location and body
//	phone post URL FORM       POST FORM (x-www-form-urlencoded) to URL
//
// Linux only.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// wait bounds every network step: the emulated guest is slow.
const wait = 60 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "phone:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: phone netns PHY NS | dhcp IFACE | dns SERVER NAME... | get DNS URL | post URL FORM")
	}
	switch args[0] {
	case "netns":
		if len(args) != 3 {
			return errors.New("usage: phone netns PHY NS")
		}
		return netns(args[1], args[2])
	case "dhcp":
		return dhcp(args[1])
	case "dns":
		if len(args) < 3 {
			return errors.New("usage: phone dns SERVER NAME [NAME]")
		}
		for _, name := range args[2:] {
			ips, err := resolver(args[1]).LookupNetIP(context.Background(), "ip4", name)
			if err != nil {
				return err
			}
			fmt.Printf("%s %v\n", name, ips)
		}
		return nil
	case "get", "post":
		if len(args) != 3 {
			return errors.New("usage: phone get DNS URL | post URL FORM")
		}
		return web(args[0], args[1], args[2])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func resolver(server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", net.JoinHostPort(server, "53"))
	}}
}

func web(method, a, b string) error {
	client := &http.Client{
		Timeout:       wait,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var resp *http.Response
	var err error
	if method == "get" {
		d := &net.Dialer{Resolver: resolver(a)}
		client.Transport = &http.Transport{DialContext: d.DialContext}
		resp, err = client.Get(b)
	} else {
		req, rerr := http.NewRequest(http.MethodPost, a, strings.NewReader(b))
		if rerr != nil {
			return rerr
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err = client.Do(req)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Printf("status=%d\nlocation=%s\n%s\n", resp.StatusCode, resp.Header.Get("Location"), body)
	return nil
}

// netns sends nl80211's SET_WIPHY_NETNS for PHY (/sys/class/ieee80211/
// PHY/index) with the namespace's file descriptor.
func netns(phy, ns string) error {
	b, err := os.ReadFile("/sys/class/ieee80211/" + phy + "/index")
	if err != nil {
		return err
	}
	idx, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	name := append([]byte("nl80211"), 0)
	reply, err := genl(s, unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY, attr(unix.CTRL_ATTR_FAMILY_NAME, name))
	if err != nil {
		return fmt.Errorf("nl80211 family: %w", err)
	}
	family := -1
	for a := reply; len(a) >= 4; {
		l, t := int(binary.NativeEndian.Uint16(a)), binary.NativeEndian.Uint16(a[2:])
		if l < 4 || l > len(a) {
			break
		}
		if t == unix.CTRL_ATTR_FAMILY_ID && l >= 6 {
			family = int(binary.NativeEndian.Uint16(a[4:]))
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	if family < 0 {
		return errors.New("no nl80211 family id")
	}
	_, err = genl(s, uint16(family), unix.NL80211_CMD_SET_WIPHY_NETNS,
		append(attr(unix.NL80211_ATTR_WIPHY, u32(uint32(idx))), attr(unix.NL80211_ATTR_NETNS_FD, u32(uint32(f.Fd())))...))
	if err != nil {
		return fmt.Errorf("move %s to %s: %w", phy, ns, err)
	}
	return nil
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func attr(t uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, t)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// genl sends one request with an ACK asked for and returns the reply's
// attributes (after the netlink and genetlink headers), or the error the
// kernel answered.
func genl(s int, family uint16, cmd uint8, attrs []byte) ([]byte, error) {
	msg := make([]byte, 16+4, 16+4+len(attrs))
	binary.NativeEndian.PutUint32(msg[0:], uint32(20+len(attrs)))
	binary.NativeEndian.PutUint16(msg[4:], family)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg[16], msg[17] = cmd, 1
	msg = append(msg, attrs...)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			return nil, err
		}
		for b := buf[:n]; len(b) >= 16; {
			l := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < 16 || l > len(b) {
				return nil, errors.New("a short netlink message")
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if code := int32(binary.NativeEndian.Uint32(b[16:])); code != 0 {
					return nil, syscall.Errno(-code)
				}
				return out, nil
			case unix.NLMSG_DONE:
				return out, nil
			default:
				if l > 20 {
					out = append(out, b[20:l]...)
				}
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}

// DHCP (RFC 2131) as far as a lease goes.
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
)

func dhcp(iface string) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), iface)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return err
	}
	defer pc.Close()
	var xid [4]byte
	_, _ = rand.Read(xid[:])
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	deadline := time.Now().Add(wait)
	exchange := func(typ byte, opts []byte, want byte) (yiaddr net.IP, o map[byte][]byte, err error) {
		for time.Now().Before(deadline) {
			if _, err := pc.WriteTo(dhcpPacket(xid, ifi.HardwareAddr, typ, opts), bcast); err != nil {
				return nil, nil, err
			}
			_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 1500)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					break // resend
				}
				y, o, ok := parseDHCP(buf[:n], xid)
				if ok && len(o[53]) == 1 && o[53][0] == want {
					return y, o, nil
				}
			}
		}
		return nil, nil, fmt.Errorf("no DHCP answer (%d) on %s within %s", want, iface, wait)
	}
	offered, o, err := exchange(dhcpDiscover, nil, dhcpOffer)
	if err != nil {
		return err
	}
	req := append([]byte{50, 4}, offered.To4()...)
	req = append(req, 54, byte(len(o[54])))
	req = append(req, o[54]...)
	addr, o, err := exchange(dhcpRequest, req, dhcpAck)
	if err != nil {
		return err
	}
	mask := net.IPMask(o[1])
	ones, _ := mask.Size()
	fmt.Printf("address=%s/%d\nrouter=%s\ndns=%s\n", addr, ones, ip4s(o[3]), ip4s(o[6]))
	return nil
}

func ip4s(b []byte) string {
	var s []string
	for ; len(b) >= 4; b = b[4:] {
		s = append(s, net.IP(b[:4]).String())
	}
	return strings.Join(s, ",")
}

func dhcpPacket(xid [4]byte, mac net.HardwareAddr, typ byte, opts []byte) []byte {
	p := make([]byte, 240)
	p[0], p[1], p[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, 6-byte address
	copy(p[4:], xid[:])
	binary.BigEndian.PutUint16(p[10:], 0x8000) // broadcast the answer: no address yet
	copy(p[28:], mac)
	copy(p[236:], []byte{99, 130, 83, 99})
	p = append(p, 53, 1, typ, 55, 3, 1, 3, 6)
	p = append(p, opts...)
	return append(p, 255)
}

func parseDHCP(b []byte, xid [4]byte) (net.IP, map[byte][]byte, bool) {
	if len(b) < 240 || b[0] != 2 || string(b[4:8]) != string(xid[:]) {
		return nil, nil, false
	}
	o := map[byte][]byte{}
	for i := 240; i < len(b); {
		t := b[i]
		if t == 255 {
			break
		}
		if t == 0 {
			i++
			continue
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			break
		}
		o[t] = b[i+2 : i+2+int(b[i+1])]
		i += 2 + int(b[i+1])
	}
	return net.IP(b[16:20]), o, true
}
