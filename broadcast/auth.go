package broadcast

import (
	"net/url"
)

// redacted stands in for secrets in a URL that is shown (logs, /healthz).
const redacted = "REDACTED"

// RedactURL returns raw fit to be shown: userinfo and every query value
// are replaced by REDACTED (the keys stay, to tell what was set). A URL
// that does not parse is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = redacted
		} else {
			for k, vs := range q {
				for i := range vs {
					vs[i] = redacted
				}
				q[k] = vs
			}
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
