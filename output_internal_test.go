//go:build linux

package forkserver

import "testing"

// TestHeadTail checks that a headTail keeps a short output whole and a long
// one's head and tail with a count of the bytes left out, in whatever
// chunks it is written.
func TestHeadTail(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"abc", "abc"},
		{"abcdefgh", "abcdefgh"},
		{"abcdefghi", "abcd\n... omitting 1 bytes ...\nfghi"},
		{"abcdefghijklmnopqrstuvwxyz", "abcd\n... omitting 18 bytes ...\nwxyz"},
	}
	for _, tt := range tests {
		for chunk := 1; chunk <= len(tt.in)+1; chunk++ {
			h := &headTail{n: 4}
			for s := tt.in; s != ""; {
				k := min(chunk, len(s))
				if n, err := h.Write([]byte(s[:k])); n != k || err != nil {
					t.Fatalf("Write: %d, %v", n, err)
				}
				s = s[k:]
			}
			if got := string(h.Bytes()); got != tt.want {
				t.Errorf("%q in chunks of %d: kept %q, want %q", tt.in, chunk, got, tt.want)
			}
		}
	}
	if (*headTail)(nil).Bytes() != nil {
		t.Error("a nil headTail kept something")
	}
}
