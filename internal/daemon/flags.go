package daemon

// rejoinSplit undoes the flag library's split of repeatable flag values
// at commas ("certs=/etc/ssl,ro" arrives as "certs=/etc/ssl" and "ro"):
// a piece for which continues is true is joined back, with its comma, to
// the value before it. It is the one place every list-valued flag whose
// values may hold commas goes through.
func rejoinSplit(vals []string, continues func(piece string) bool) []string {
	var out []string
	for _, v := range vals {
		if len(out) > 0 && continues(v) {
			out[len(out)-1] += "," + v
			continue
		}
		out = append(out, v)
	}
	return out
}
