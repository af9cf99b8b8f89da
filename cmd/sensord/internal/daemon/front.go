package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sensord/cmd/sensord/internal/connlimit"
	"sensord/cmd/sensord/internal/guard"
	"sensord/cmd/sensord/internal/tlscert"
	"sensord/systemd"
)

// front is the daemon's listeners and HTTP servers: plain HTTP, and with
// -tls-cert HTTPS (which serves wss:// too). Under systemd the first
// passed socket is the plain one (port 80) and a second the TLS one
// (443); without systemd -listen is the one listener, TLS when a
// certificate is given.
type front struct {
	log      *slog.Logger
	servers  []*http.Server
	lns      []net.Listener
	secure   []bool // lns[i] speaks TLS
	activate bool
}

// openFront binds (or takes from systemd) the listeners, bounds their
// connections together below the descriptor limit, and makes the servers.
func (d *daemon) openFront(handler http.Handler) (*front, error) {
	cfg := d.cfg
	var conf *tls.Config
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if certFile == "" && cfg.TLSAuto != "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("tls: host name: %w", err)
		}
		certFile, keyFile = d.autoCert(host)
	}
	if certFile != "" {
		cert, fp, err := tlscert.Load(certFile, keyFile)
		switch {
		case err != nil && cfg.TLSCert == "":
			// -tls-auto's files went bad between making and loading them.
			d.degrade("tls-auto: " + err.Error() + "; serving plain HTTP")
		case err != nil:
			return nil, badFlag("tls-cert", "%v", err)
		default:
			conf = tlscert.ServerConfig(cert)
			d.tlsFingerprint = fp
			d.log.Info("tls certificate", "file", certFile, "sha256", fp, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
		}
	}
	lns, err := systemd.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	activated := len(lns) > 0
	if !activated {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, listenError(cfg.Listen, err)
		}
		lns = []net.Listener{ln}
	}
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, fmt.Errorf("descriptor limit: %w", err)
	}
	d.conns = connlimit.New(connCap(nofile.Cur), pendingCap(), preRequestBytes)

	f := &front{log: d.log, activate: activated}
	add := func(ln net.Listener, h http.Handler, secure bool) {
		l := d.conns.Listen(ln)
		if secure {
			l = tls.NewListener(l, conf)
		}
		f.lns = append(f.lns, l)
		f.secure = append(f.secure, secure)
		f.servers = append(f.servers, &http.Server{
			Handler:           d.conns.Serving(refuseGetBody(h)),
			ConnState:         d.conns.ConnState,
			ConnContext:       d.conns.ConnContext,
			MaxHeaderBytes:    maxHeaderBytes,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		})
	}
	switch {
	case conf == nil:
		add(lns[0], handler, false)
		for _, extra := range lns[1:] {
			d.log.Warn("socket not served: no -tls-cert for it", "addr", extra.Addr().String())
			extra.Close()
		}
	case len(lns) == 1:
		add(lns[0], handler, true)
	default:
		plain := handler
		if cfg.HTTPSRedirect {
			plain = d.hostGuard(redirectHTTPS(lns[1].Addr()))
		}
		add(lns[0], plain, false)
		add(lns[1], handler, true)
		for _, extra := range lns[2:] {
			extra.Close()
		}
	}
	return f, nil
}

// autoCert is -tls-auto's certificate: made or kept by tlscert.SelfSigned;
// when that fails (a full or read-only disk), the pair already there if it
// still loads (expired or for another name, but the last good one),
// else none: the daemon then serves plain HTTP, and says why on /healthz
// and the dashboard instead of not starting.
func (d *daemon) autoCert(host string) (certFile, keyFile string) {
	dir := d.cfg.TLSAuto
	certFile, keyFile, made, err := tlscert.SelfSigned(dir, host, time.Now())
	if err == nil {
		if made {
			d.log.Info("made a self-signed certificate", "dir", dir, "host", host+".local")
		}
		return certFile, keyFile
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, _, lerr := tlscert.Load(certFile, keyFile); lerr == nil {
		d.degrade(fmt.Sprintf("tls-auto: cannot renew the certificate in %s (%v); serving the last one", dir, err))
		return certFile, keyFile
	}
	d.degrade(fmt.Sprintf("tls-auto: cannot make a certificate in %s (%v); serving plain HTTP", dir, err))
	return "", ""
}

// degrade records a problem that the daemon works around: logged, and
// shown on /healthz and the dashboard with the settings' warnings.
func (d *daemon) degrade(problem string) {
	d.log.Warn("degraded", "problem", problem)
	d.warnings = append(d.warnings, problem)
}

// serve runs every server; the first to fail sends its error.
func (f *front) serve(errs chan<- error) {
	for i, srv := range f.servers {
		ln := f.lns[i]
		go func() { errs <- srv.Serve(ln) }()
		scheme := "http"
		if f.secure[i] {
			scheme = "https"
		}
		f.log.Info("listening", "addr", ln.Addr().String(), "socket_activated", f.activate, "dashboard", dashboardURL(scheme, ln.Addr()))
	}
}

// shutdown closes idle connections and waits for active requests.
func (f *front) shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range f.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// getBodyWriteWait bounds the write of refuseGetBody's short answer.
const getBodyWriteWait = time.Second

// getBodyAnswer is refuseGetBody's whole answer, written on the bare
// connection.
const getBodyAnswer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 57\r\n\r\na GET or HEAD request must not carry a body; none is read"

// refuseGetBody answers a GET or HEAD that announces a body (no sensord
// endpoint reads one) with 400 and closes the connection at once. Left to
// net/http, the connection would stay open to read and throw away a body
// that may never come, or linger half a second after a close: memory a
// peer could multiply by thousands of connections. HTTP/2 cannot be
// hijacked and frames its bodies itself: it goes on to the handler.
func refuseGetBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.ContentLength != 0 {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.SetWriteDeadline(time.Now().Add(getBodyWriteWait))
				_, _ = io.WriteString(c, getBodyAnswer)
				_ = c.Close()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// redirectHTTPS answers every plain request with a permanent redirect to
// the same path on the TLS listener at tlsAddr's port.
func redirectHTTPS(tlsAddr net.Addr) http.Handler {
	_, port, _ := net.SplitHostPort(tlsAddr.String())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := guard.NormHost(r.Host)
		if host == "" {
			http.Error(w, "no Host header", http.StatusBadRequest)
			return
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		} else if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// listenError explains a failed bind; privileged ports get the hint of
// how to bind them.
func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: %w (another sensord, or another server, already uses this port: stop it or choose another -listen)", addr, err)
	}
	_, p, _ := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(p); perr == nil && n > 0 && n < 1024 {
		return fmt.Errorf("listen on %s: %w (ports below 1024 need root, CAP_NET_BIND_SERVICE or sensord.socket)", addr, err)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}

// dashboardURL is the address a person opens, for the start-up log line.
func dashboardURL(scheme string, a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h + ".local"
		}
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host + "/"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
