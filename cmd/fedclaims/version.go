package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/model"
)

// version and commit are stamped at link time (the Makefile's build target, the
// Dockerfile):
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse HEAD)"
//
// Unstamped, versionText falls back to what go build recorded of the checkout it
// built (vcs.revision, vcs.modified). These two are the only package-level
// variables of the command, and nothing writes them at run time.
var (
	version = "dev"
	commit  = ""
)

// buildInfo is what `fedclaims version` and `fedclaims --version` report.
type buildInfo struct {
	Version, Commit string
	// Modified: the commit's tree had local changes when it was built.
	Modified bool
	Go       string
	Platform string
	BLAS     string
}

// readBuildInfo combines the stamped version and commit with the Go build's own
// record: read is debug.ReadBuildInfo, a parameter so that tests can give another.
func readBuildInfo(stampedVersion, stampedCommit string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: stampedVersion, Commit: stampedCommit, Go: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, BLAS: model.BLASName}
	if b.Version == "" {
		b.Version = "dev"
	}
	if strings.HasSuffix(b.Version, "-dirty") {
		b.Modified = true
	}
	if bi, ok := read(); ok {
		var revision string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if b.Commit == "" && revision != "" {
			b.Commit, b.Modified = revision, modified
		}
		if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			// go install module@version records the module's version.
			b.Version = bi.Main.Version
		}
	}
	return b
}

// String is the text both forms print: the version, then one field a line.
func (b buildInfo) String() string {
	c := b.Commit
	switch {
	case c == "":
		c = "unknown (built outside a git checkout and not stamped)"
	case b.Modified:
		c += " (modified)"
	}
	return fmt.Sprintf("fedclaims %s\ncommit: %s\ngo: %s %s\nblas: %s\n", b.Version, c, b.Go, b.Platform, b.BLAS)
}

// softwareVersion is the one-line version a site reports at enrolment:
// fedclaims-site/VERSION, and the commit's first 12 digits when known.
func softwareVersion() string { return readBuildInfo(version, commit, debug.ReadBuildInfo).software() }

func (b buildInfo) software() string {
	s := "fedclaims-site/" + b.Version
	if c := b.Commit; c != "" && !strings.HasPrefix(b.Version, c[:min(len(c), 7)]) {
		s += "+" + c[:min(len(c), 12)]
	}
	if b.Modified && !strings.HasSuffix(s, "-dirty") {
		s += "-dirty"
	}
	return s
}

func versionText() string { return readBuildInfo(version, commit, debug.ReadBuildInfo).String() }

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from, the Go version, OS/arch and BLAS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(a.stdout, versionText())
			return err
		},
	}
}
