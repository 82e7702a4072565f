package clientconfig

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
)

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		in      string
		wantErr bool
	}{
		{"sha256:" + hex, false},
		{hex, false},
		{"SHA256:" + strings.ToUpper(hex), true}, // the prefix is lowercase
		{strings.ToUpper(hex), false},
		{strings.TrimSuffix(strings.Repeat("AB:", 32), ":"), false},
		{"sha256:" + hex[:62], true},
		{"sha256:" + hex[:62] + "zz", true},
		{"", true},
	} {
		got, err := ParseFingerprint(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != hex) {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("0f", 32))
	f.Add("ab:cd")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseFingerprint(s)
		if err == nil && (len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "") {
			t.Fatalf("ParseFingerprint(%q) = %q, not 64 lowercase hex digits", s, h)
		}
	})
}

// TestPinCA: the CA a TLS server serves is returned only when its
// fingerprint is the one asked for.
func TestPinCA(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp.Certificate = append(kp.Certificate, ca.Cert.Raw)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.StartTLS()
	defer srv.Close()
	ctx := context.Background()
	got, err := PinCA(ctx, srv.URL, "sha256:"+ca.ID())
	if err != nil || string(got) != string(ca.CertPEM()) {
		t.Fatalf("PinCA(right fingerprint) = %q, %v", got, err)
	}
	if _, err := PinCA(ctx, srv.URL, "sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), ca.ID()) {
		t.Errorf("PinCA(wrong fingerprint) = %v; want an error naming the CA served", err)
	}
	if _, err := PinCA(ctx, srv.URL, "nope"); err == nil {
		t.Error("PinCA(malformed fingerprint) succeeded")
	}
}
