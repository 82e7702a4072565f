package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestH2CClient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()

	tests := []struct {
		name   string
		client *http.Client
		want   string
	}{
		{"H2CClient speaks h2c to http", H2CClient(), "HTTP/2.0"},
		{"HTTPClient speaks HTTP/1.1 to http", HTTPClient(), "HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.client.CloseIdleConnections()
			resp, err := tt.client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want || resp.Proto != tt.want {
				t.Errorf("server saw %s, client saw %s; want %s", b, resp.Proto, tt.want)
			}
		})
	}
}

// TestTLSClients: over TLS, HTTPClientTLS speaks HTTP/1.1 (unary calls
// cost what they cost in clear text) and H2CClientTLS HTTP/2 (the
// bidirectional streams need it), to a server that offers both.
func TestTLSClients(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig // trusts the test server
	for _, tt := range []struct {
		name   string
		client *http.Client
		want   string
	}{
		{"HTTPClientTLS", HTTPClientTLS(cfg), "HTTP/1.1"},
		{"H2CClientTLS", H2CClientTLS(cfg), "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.client.CloseIdleConnections()
			resp, err := tt.client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tt.want {
				t.Errorf("server saw %s, want %s", b, tt.want)
			}
		})
	}
}
