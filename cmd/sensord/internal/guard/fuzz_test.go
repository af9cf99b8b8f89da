package guard

import (
	"strings"
	"testing"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "BEARER\tabc", "Basic abc", "Bearer", "Bearer ", " Bearer x", "Bearerabc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := BearerToken(h)
		if !ok {
			if tok != "" {
				t.Fatalf("%q: token %q without ok", h, tok)
			}
			return
		}
		if tok == "" || strings.Trim(tok, " \t") != tok || !strings.Contains(h, tok) {
			t.Fatalf("%q: token %q", h, tok)
		}
		scheme := strings.Fields(strings.ReplaceAll(h, "\t", " "))[0]
		if !strings.EqualFold(scheme, "bearer") {
			t.Fatalf("%q: scheme %q taken as Bearer", h, scheme)
		}
		// Any case and spacing of the same credentials gives the same token.
		if again, ok := BearerToken("bEaReR \t " + tok + "\t"); !ok || again != tok {
			t.Fatalf("%q: respaced gives %q %v, want %q", h, again, ok, tok)
		}
	})
}
