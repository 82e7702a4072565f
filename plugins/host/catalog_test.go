package host

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	sumA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	sumB = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseCatalog(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    catalog
		wantErr string
	}{
		{"empty", "", catalog{}, ""},
		{"text and binary mode", sumA + "  dcos-driver-a\n" + sumB + " *dcos-isolator-b\n",
			catalog{"dcos-driver-a": mustHex(sumA), "dcos-isolator-b": mustHex(sumB)}, ""},
		{"absolute path, blank and comment lines, CRLF", "# plugins\n\n" + sumA + "  /opt/dcos/plugins/dcos-driver-a\r\n",
			catalog{"/opt/dcos/plugins/dcos-driver-a": mustHex(sumA)}, ""},
		{"uppercase hex", strings.ToUpper(sumA) + "  ./dcos-driver-a\n", catalog{"dcos-driver-a": mustHex(sumA)}, ""},
		{"same twice", sumA + "  x\n" + sumA + "  x\n", catalog{"x": mustHex(sumA)}, ""},
		{"different twice", sumA + "  x\n" + sumB + "  x\n", nil, "CAT:2: x is listed again"},
		{"one space", sumA + " x\n", nil, "CAT:1: want"},
		{"short sum", sumA[:62] + "  x\n", nil, "CAT:1: want"},
		{"not hex", strings.Repeat("z", 64) + "  x\n", nil, "CAT:1: want"},
		{"no name", sumA + "  \n", nil, "CAT:1: want"},
		{"just a name", "dcos-driver-a\n", nil, "CAT:1: want"},
		{"bad third line", sumA + "  a\n" + sumB + "  b\nsha256 c\n", nil, "CAT:3: want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCatalog("CAT", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("catalog (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCatalog_Lookup(t *testing.T) {
	c := catalog{"dcos-driver-a": mustHex(sumA), "/opt/p/dcos-driver-b": mustHex(sumB)}
	tests := []struct {
		path string
		want string
	}{
		{"/any/dir/dcos-driver-a", sumA},
		{"/opt/p/dcos-driver-b", sumB},
		{"/elsewhere/dcos-driver-b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			sum, ok := c.lookup(tt.path)
			if got := hex.EncodeToString(sum); got != tt.want || ok != (tt.want != "") {
				t.Errorf("lookup = %s, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

// FuzzParseCatalog checks that parseCatalog, which reads an operator's
// file, never panics and that what it accepts are sha256 sums.
func FuzzParseCatalog(f *testing.F) {
	f.Add(sumA + "  dcos-driver-a\n" + sumB + " *b\n")
	f.Add("# c\n\n" + sumA + "  /abs/x\r\n")
	f.Add(sumA + " x")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := parseCatalog("fuzz", strings.NewReader(in))
		if err != nil {
			return
		}
		for name, sum := range c {
			if len(sum) != 32 || name == "" {
				t.Fatalf("accepted %q: %x", name, sum)
			}
		}
	})
}
