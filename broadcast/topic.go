package broadcast

import "strings"

// ValidFilter reports whether f is a valid MQTT topic filter: not empty,
// '+' only as a whole level, '#' only as the whole last level.
func ValidFilter(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '+':
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return false
			}
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return false
			}
		}
	}
	return true
}

// MatchTopic reports whether topic matches the MQTT filter f (MQTT 3.1.1
// section 4.7): levels split on '/', '+' matches exactly one level (which
// may be empty), a trailing '#' matches the parent level and any number of
// levels below it. As in MQTT, a topic starting with '$' is not matched by
// a filter starting with a wildcard. An invalid filter matches nothing.
// It does not allocate.
func MatchTopic(f, topic string) bool {
	return ValidFilter(f) && matchValid(f, topic)
}

// matchValid is MatchTopic for a filter already checked with ValidFilter
// (a client's filters are checked once, when it connects).
func matchValid(f, topic string) bool {
	if strings.HasPrefix(topic, "$") && (f[0] == '+' || f[0] == '#') {
		return false
	}
	for {
		// Take one level off the filter.
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// Topic ended; only "/#" may remain: "a/#" matches "a".
			return frest == "#"
		case !fmore:
			return false
		}
		f, topic = frest, trest
	}
}

// matchAny reports whether topic matches one of filters (each checked with
// ValidFilter); no filters means everything.
func matchAny(filters []string, topic string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if matchValid(f, topic) {
			return true
		}
	}
	return false
}
