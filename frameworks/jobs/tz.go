package jobs

// The IANA database embedded, so a time zone works on hosts without
// /usr/share/zoneinfo.
import _ "time/tzdata"
