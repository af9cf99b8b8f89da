package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sensord/internal/testutil"
)

// updatePanelStandIn answers api/update as sensord's update panel does on
// an A/B image (cmd/sensord's tests prove the real one): writable says
// whether an owner token is set, and a POST is accepted only with owner as
// its bearer token. The page itself is this package's, in a real browser.
type updatePanelStandIn struct {
	owner    string
	writable bool
	// info, when set, is the GET answer instead: a file in testdata that
	// the real panel's test (TestUpdatePanelFixturesForTheDashboard in
	// cmd/sensord/internal/daemon) keeps equal to what the panel says.
	info []byte

	mu    sync.Mutex
	auths []string // the Authorization of each POST
}

func (s *updatePanelStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet && s.info != nil {
		w.Write(s.info)
		return
	}
	if r.Method == http.MethodGet {
		io.WriteString(w, `{"available":true,"slot":"A","mode":"committed","version":"1.0","pending":false,"writable":`+map[bool]string{true: "true", false: "false"}[s.writable]+`}`)
		return
	}
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+s.owner {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"this changes the appliance and needs the owner token"}`)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"the bundle's signature is good"}`)
}

func (s *updatePanelStandIn) posts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

func serveWithUpdatePanel(t *testing.T, panel http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", defaultPage())
	mux.Handle("/api/update", panel)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestUpdatePanelAsksForTheOwnerTokenOnceAndKeepsIt(t *testing.T) {
	panel := &updatePanelStandIn{owner: "0wner-s3cret", writable: true}
	url := serveWithUpdatePanel(t, panel)
	ctx := tab(t)
	open(t, ctx, url+"/")
	run(t, ctx, chromedp.WaitVisible("#update-form", chromedp.ByID))
	// A file for the form, set from script (a test cannot drive the
	// operating system's file picker).
	pick := chromedp.Evaluate(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(['bundle'], 'x.update'));
		document.getElementById('update-file').files = dt.files;
	})()`, nil)
	status := func() string {
		var s string
		run(t, ctx, chromedp.Text("#update-status", &s, chromedp.ByID))
		return s
	}
	submit := chromedp.Click(`#update-form button[type=submit]`, chromedp.ByQuery)

	// The first upload asks for the token and sends nothing.
	run(t, ctx, pick, submit)
	run(t, ctx, chromedp.WaitVisible("#owner-token", chromedp.ByID))
	if s := status(); !strings.Contains(s, "owner token") || len(panel.posts()) != 0 {
		t.Errorf("status %q, posts %q; want a request for the owner token and nothing sent", s, panel.posts())
	}
	// A wrong one is refused, forgotten, and asked for again.
	run(t, ctx, chromedp.SendKeys("#owner-token", "wrong-token", chromedp.ByID), submit)
	until(t, func() bool { return strings.HasPrefix(status(), "Wrong owner token") }, "the wrong token's message")
	// The right one goes out as the header and is kept.
	run(t, ctx, chromedp.SendKeys("#owner-token", "0wner-s3cret", chromedp.ByID), submit)
	until(t, func() bool { return strings.HasPrefix(status(), "Accepted") }, "the upload accepted")
	// After a reload the next upload asks nothing: the browser kept it.
	run(t, ctx, chromedp.Reload(), chromedp.WaitVisible("#update-form", chromedp.ByID), pick, submit)
	until(t, func() bool { return len(panel.posts()) == 3 && strings.HasPrefix(status(), "Accepted") }, "a second upload with the kept token")
	want := []string{"Bearer wrong-token", "Bearer 0wner-s3cret", "Bearer 0wner-s3cret"}
	if got := panel.posts(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the posts carried %q, want %q", got, want)
	}
}

func TestUpdatePanelSaysHowToTurnWritingOn(t *testing.T) {
	url := serveWithUpdatePanel(t, &updatePanelStandIn{writable: false})
	ctx := tab(t)
	open(t, ctx, url+"/")
	run(t, ctx, chromedp.WaitVisible("#update-form", chromedp.ByID))
	var s string
	until(t, func() bool {
		run(t, ctx, chromedp.Text("#update-status", &s, chromedp.ByID))
		return strings.Contains(s, "Writing is off") && strings.Contains(s, "SENSORD_OWNER_TOKEN")
	}, "the writing-is-off message")
}

// TestUpdatePanelWarnsBeforeAnUploadThatCannotCommit: with the panel's
// answer for a device whose update would be refused (a trial already
// waits for its boot), the form says what would decide the trial and
// warns, and the first press of the button sends nothing; the second does.
// With the answer for a device where nothing stands in the way, the form
// says what would decide the trial, shows no warning, and one press
// uploads.
func TestUpdatePanelWarnsBeforeAnUploadThatCannotCommit(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		presses    int // before the upload is sent
	}{
		{"an upload that would be refused needs a second confirmation", "update-warn.json", 2},
		{"an upload with nothing in its way goes straight through", "update-clear.json", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			panel := &updatePanelStandIn{owner: "0wner-s3cret", writable: true, info: info}
			url := serveWithUpdatePanel(t, panel)
			ctx := tab(t)
			open(t, ctx, url+"/")
			run(t, ctx, chromedp.Evaluate(`window.sensord.keepOwnerToken('0wner-s3cret')`, nil),
				chromedp.WaitVisible("#update-form", chromedp.ByID))
			// What the form shows, read in one go (an element the page
			// lacks reads as empty rather than waited for).
			var p struct {
				Says, Warning, Status, Button string
				WarningShown                  bool
			}
			look := func() {
				run(t, ctx, chromedp.Evaluate(`(() => {
					const text = (sel) => { const e = document.querySelector(sel); return e && !e.hidden ? e.textContent : ''; };
					const w = document.getElementById('update-warning');
					return { Says: text('#update-forecast'), Warning: text('#update-warning'), Status: text('#update-status'),
						Button: text('#update-form button[type=submit]'), WarningShown: !!w && !w.hidden && w.offsetParent !== null };
				})()`, &p))
			}
			until(t, func() bool { look(); return p.Says != "" }, "forecast on the form")
			if !strings.Contains(p.Says, "If you upload now") || !strings.Contains(p.Says, "The sensor reads well now") || !strings.Contains(p.Says, "10 minutes") {
				t.Errorf("the forecast says %q, want what decides the trial", p.Says)
			}
			warns := tc.presses == 2
			if p.WarningShown != warns || (warns && !strings.Contains(p.Warning, "refused by the updater")) {
				t.Errorf("warning shown %v (%q), want %v", p.WarningShown, p.Warning, warns)
			}
			run(t, ctx, chromedp.Evaluate(`(() => {
				const dt = new DataTransfer();
				dt.items.add(new File(['bundle'], 'x.update'));
				document.getElementById('update-file').files = dt.files;
			})()`, nil))
			submit := chromedp.Click(`#update-form button[type=submit]`, chromedp.ByQuery)
			if warns {
				run(t, ctx, submit)
				until(t, func() bool { look(); return p.Button == "Upload anyway" }, "button asking for a second confirmation")
				if len(panel.posts()) != 0 || !strings.Contains(p.Status, "Not uploaded") {
					t.Fatalf("after the first press: %d posts, status %q; want nothing sent and the warning pointed at", len(panel.posts()), p.Status)
				}
			}
			run(t, ctx, submit)
			until(t, func() bool { look(); return strings.HasPrefix(p.Status, "Accepted") }, "acceptance of the upload")
			if got := panel.posts(); len(got) != 1 {
				t.Errorf("%d uploads sent after %d presses, want 1", len(got), tc.presses)
			}
		})
	}
}

// until waits for cond on the page, with the tree's deadline helper.
func until(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testutil.Until(t, 10*time.Second, cond, func() string { return "no " + what })
}
