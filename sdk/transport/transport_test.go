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
