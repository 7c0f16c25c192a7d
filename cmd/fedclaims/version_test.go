package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionForms checks that `fedclaims version` and `fedclaims --version` print
// the same text, with the commit field.
func TestVersionForms(t *testing.T) {
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("fedclaims %v: %v (%s)", args, err, errb.String())
		}
		outs = append(outs, out.String())
	}
	if outs[0] != outs[1] {
		t.Fatalf("fedclaims version printed %q, fedclaims --version %q", outs[0], outs[1])
	}
	for _, want := range []string{"fedclaims ", "\ncommit: ", "\ngo: go1.", "\nblas: "} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("fedclaims version printed %q, without %q", outs[0], want)
		}
	}
}

// TestReadBuildInfo: a stamped version and commit win; unstamped, the Go build's
// record of the checkout fills the commit.
func TestReadBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	installed := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true
	}
	for _, tc := range []struct {
		name, version, commit string
		read                  func() (*debug.BuildInfo, bool)
		wantVersion           string
		wantCommit            string
	}{
		{"stamped", "v0.4.0-3-gabcdef0", "abcdef0123", vcs("true"), "fedclaims v0.4.0-3-gabcdef0\n", "commit: abcdef0123\n"},
		{"stamped dirty", "abcdef0-dirty", "abcdef0123", none, "fedclaims abcdef0-dirty\n", "commit: abcdef0123 (modified)\n"},
		{"vcs clean", "dev", "", vcs("false"), "fedclaims dev\n", "commit: " + rev + "\n"},
		{"vcs modified", "dev", "", vcs("true"), "fedclaims dev\n", "commit: " + rev + " (modified)\n"},
		{"go install", "", "", installed, "fedclaims v1.2.3\n", "commit: unknown"},
		{"nothing", "dev", "", none, "fedclaims dev\n", "commit: unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readBuildInfo(tc.version, tc.commit, tc.read).String()
			if !strings.HasPrefix(got, tc.wantVersion) || !strings.Contains(got, tc.wantCommit) {
				t.Errorf("got %q, want it to begin %q and hold %q", got, tc.wantVersion, tc.wantCommit)
			}
		})
	}
}

func TestSoftwareVersion(t *testing.T) {
	for _, tc := range []struct {
		b    buildInfo
		want string
	}{
		{buildInfo{Version: "dev"}, "fedclaims-site/dev"},
		{buildInfo{Version: "dev", Commit: "0123456789abcdef0123", Modified: true}, "fedclaims-site/dev+0123456789ab-dirty"},
		{buildInfo{Version: "a3cb2d5-dirty", Commit: "a3cb2d5aaaaaaaaa", Modified: true}, "fedclaims-site/a3cb2d5-dirty"},
		{buildInfo{Version: "v1.2.0", Commit: "ffffffffffffffff"}, "fedclaims-site/v1.2.0+ffffffffffff"},
	} {
		if got := tc.b.software(); got != tc.want {
			t.Errorf("%+v: software() = %q, want %q", tc.b, got, tc.want)
		}
	}
}
