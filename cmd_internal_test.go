//go:build linux

package forkserver

import (
	"io"
	"slices"
	"testing"
)

// TestDedupEnv is os/exec's env_test.go for the cases of a Unix system:
// those with noCase (Windows) and nulOK (Plan 9) have no meaning here.
func TestDedupEnv(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in      []string
		want    []string
		wantErr bool
	}{
		{
			in:   []string{"k1=v1", "K1=V2", "k1=v3"},
			want: []string{"K1=V2", "k1=v3"},
		},
		{
			in:   []string{"=a", "=b", "foo", "bar"},
			want: []string{"=b", "foo", "bar"},
		},
		{
			// #52436: preserve invalid key-value entries (for now).
			in:   []string{"dodgy", "entries"},
			want: []string{"dodgy", "entries"},
		},
		{
			// Filter out entries containing NULs.
			in:      []string{"A=a\x00b", "B=b", "C\x00C=c"},
			want:    []string{"B=b"},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		got, err := dedupEnv(tt.in)
		if !slices.Equal(got, tt.want) || (err != nil) != tt.wantErr {
			t.Errorf("Dedup(%q) = %q, %v; want %q, error:%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestPrefixSuffixSaver is os/exec's internal_test.go, on the headTail
// that keeps the standard error of Output.
func TestPrefixSuffixSaver(t *testing.T) {
	tests := []struct {
		N      int
		writes []string
		want   string
	}{
		{N: 2, writes: nil, want: ""},
		{N: 2, writes: []string{"a"}, want: "a"},
		{N: 2, writes: []string{"abc", "d"}, want: "abcd"},
		{N: 2, writes: []string{"abc", "d", "e"}, want: "ab\n... omitting 1 bytes ...\nde"},
		{N: 2, writes: []string{"ab______________________yz"}, want: "ab\n... omitting 22 bytes ...\nyz"},
		{N: 2, writes: []string{"ab_______________________y", "z"}, want: "ab\n... omitting 23 bytes ...\nyz"},
	}
	for i, tt := range tests {
		w := &headTail{n: tt.N}
		for _, s := range tt.writes {
			n, err := io.WriteString(w, s)
			if err != nil || n != len(s) {
				t.Errorf("%d. WriteString(%q) = %v, %v; want %v, %v", i, s, n, err, len(s), nil)
			}
		}
		if got := string(w.Bytes()); got != tt.want {
			t.Errorf("%d. Bytes = %q; want %q", i, got, tt.want)
		}
	}
}
