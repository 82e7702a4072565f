package ctl

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in        string
		host      bool
		wantClaim *syscallsv1.VolumeClaim
		wantMount *syscallsv1.VolumeMount
		wantErr   bool
	}{
		{"data=64Mi:data", false, &syscallsv1.VolumeClaim{Name: "data", SizeBytes: 64 << 20}, &syscallsv1.VolumeMount{Name: "data", Path: "data"}, false},
		{"data:srv/data:ro", false, &syscallsv1.VolumeClaim{Name: "data"}, &syscallsv1.VolumeMount{Name: "data", Path: "srv/data", ReadOnly: true}, false},
		{"certs:etc/certs:ro", true, nil, &syscallsv1.VolumeMount{Name: "certs", Path: "etc/certs", ReadOnly: true, Host: true}, false},
		{"certs=1Gi:x", true, nil, nil, true},
		{"data", false, nil, nil, true},
		{"data=lots:x", false, nil, nil, true},
		{"data:x:rx", false, nil, nil, true},
		{":x", false, nil, nil, true},
	}
	for _, tt := range tests {
		claim, m, err := parseVolume(tt.in, tt.host)
		if (err != nil) != tt.wantErr || !proto.Equal(claim, tt.wantClaim) || !proto.Equal(m, tt.wantMount) {
			t.Errorf("parseVolume(%q, %v) = %v, %v, %v; want %v, %v, error %v", tt.in, tt.host, claim, m, err, tt.wantClaim, tt.wantMount, tt.wantErr)
		}
	}
}

func TestEventLine_Volume(t *testing.T) {
	ev := &syscallsv1.Event{Revision: 3, Kind: syscallsv1.EventKind_EVENT_KIND_VOLUME_CREATED,
		Volume: &syscallsv1.Volume{Name: "data", AgentId: "ag-1", Role: "db", SizeBytes: 16 << 20}}
	got := strings.Fields(eventLine(ev))
	want := []string{"3", eventKind(ev.GetKind()), "data", "ag-1", "role", "db,", "16Mi"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("eventLine = %q, want %q", got, want)
	}
}
