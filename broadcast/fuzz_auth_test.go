package broadcast

import (
	"net/url"
	"strings"
	"testing"
)

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"", "topic=sensors/%23", "topic=a&topic=b/+", "topic=%zz", "topic=a;b", "topic=a/%23/b",
		strings.Repeat("topic=x&", MaxFilters+1), "access_token=t&topic=%2B", "topic=", "=&&="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		filters, err := parseFilters(q)
		if err != nil {
			if filters != nil {
				t.Fatalf("%q: filters %q with error %v", q, filters, err)
			}
			return
		}
		if len(filters) > MaxFilters {
			t.Fatalf("%q: %d filters accepted, more than %d", q, len(filters), MaxFilters)
		}
		for _, fl := range filters {
			if !ValidFilter(fl) {
				t.Fatalf("%q: invalid filter %q accepted", q, fl)
			}
		}
		// Fail closed: what parses here parses for url too, with the same
		// filters.
		v, perr := url.ParseQuery(q)
		if perr != nil || len(v["topic"]) != len(filters) {
			t.Fatalf("%q: accepted %q, url.ParseQuery says %v %q", q, filters, perr, v["topic"])
		}
	})
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"ws://u:p@h/x?a=1&b=2", "wss://h/?token=s3cret", "ws://h/", "::", "ws://u@h", "ws://h/?%zz=1", "ws://h/?a=1;b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := RedactURL(raw)
		u, err := url.Parse(raw)
		if err != nil {
			if got != redacted {
				t.Fatalf("%q does not parse but shows as %q", raw, got)
			}
			return
		}
		// What is shown parses back to the same URL with no secret left:
		// userinfo only REDACTED, every query value REDACTED.
		g, err := url.Parse(got)
		if err != nil {
			t.Fatalf("%q shows as %q, which does not parse: %v", raw, got, err)
		}
		if (u.User == nil) != (g.User == nil) {
			t.Fatalf("%q: userinfo %v shows as %v", raw, u.User, g.User)
		}
		if g.User != nil {
			if _, has := g.User.Password(); has || g.User.Username() != redacted {
				t.Fatalf("%q: userinfo shown as %q", raw, g.User)
			}
		}
		if g.Host != u.Host || g.Path != u.Path {
			t.Fatalf("%q: host/path %q %q shown as %q %q", raw, u.Host, u.Path, g.Host, g.Path)
		}
		if u.RawQuery != "" {
			q, err := url.ParseQuery(g.RawQuery)
			if err != nil && g.RawQuery != redacted {
				t.Fatalf("%q: query shown as %q", raw, g.RawQuery)
			}
			for k, vs := range q {
				for _, v := range vs {
					if v != redacted && g.RawQuery != redacted {
						t.Fatalf("%q: query %s=%q shown", raw, k, v)
					}
				}
			}
		}
	})
}
