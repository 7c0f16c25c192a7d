package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/localfed"
)

// No docker engine runs where the tests run, so the compose topology is checked the
// way docker compose would read it: every service, dependency, volume and command,
// every file a service names, and every configuration it mounts loaded by the real
// configuration loaders.

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image      string         `yaml:"image"`
	Build      composeBuild   `yaml:"build"`
	User       string         `yaml:"user"`
	Entrypoint []string       `yaml:"entrypoint"`
	Command    []string       `yaml:"command"`
	DependsOn  map[string]dep `yaml:"depends_on"`
	Volumes    []mount        `yaml:"volumes"`
	Ports      []string       `yaml:"ports"`
	Restart    string         `yaml:"restart"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type dep struct {
	Condition string `yaml:"condition"`
}

// mount is a volume entry in either of compose's syntaxes.
type mount struct {
	Type     string
	Source   string
	Target   string
	ReadOnly bool
	Subpath  string
}

func (m *mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return &yaml.TypeError{Errors: []string{"volume " + n.Value + ": want SOURCE:TARGET[:MODE]"}}
		}
		m.Source, m.Target = parts[0], parts[1]
		m.ReadOnly = len(parts) == 3 && parts[2] == "ro"
		m.Type = "volume"
		if strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") {
			m.Type = "bind"
		}
		return nil
	}
	var long struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
		Volume   struct {
			Subpath string `yaml:"subpath"`
		} `yaml:"volume"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	*m = mount{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly, Subpath: long.Volume.Subpath}
	return nil
}

func loadCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c, root
}

// bindFile returns the repository file mounted at target in s.
func bindFile(t *testing.T, root string, s composeService, target string) string {
	t.Helper()
	for _, m := range s.Volumes {
		if m.Type == "bind" && m.Target == target {
			return filepath.Join(root, m.Source)
		}
	}
	t.Fatalf("no bind mount at %s", target)
	return ""
}

func mountAt(s composeService, target string) (mount, bool) {
	for _, m := range s.Volumes {
		if m.Target == target {
			return m, true
		}
	}
	return mount{}, false
}

func TestComposeTopology(t *testing.T) {
	c, root := loadCompose(t)
	siteIDs := []string{"h01", "h02", "h03"}
	want := []string{"setup", "aggregator"}
	for _, id := range siteIDs {
		want = append(want, "site-"+id)
	}
	var got []string
	for name := range c.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(got, wantSorted) {
		t.Fatalf("services %v, want %v", got, wantSorted)
	}

	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if s.Image != "fedclaims:dev" {
				t.Errorf("image %q, want the one fedclaims:dev image for every role", s.Image)
			}
			if s.Build.Context == "" || s.Build.Dockerfile == "" {
				t.Fatalf("build %+v: context and dockerfile required", s.Build)
			}
			if _, err := os.Stat(filepath.Join(root, s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("build: %v", err)
			}
			for _, m := range s.Volumes {
				switch m.Type {
				case "bind":
					if fi, err := os.Stat(filepath.Join(root, m.Source)); err != nil {
						t.Errorf("bind mount: %v", err)
					} else if fi.IsDir() {
						t.Errorf("bind mount %s is a directory; mount single files so a service sees only its own", m.Source)
					}
					if !m.ReadOnly {
						t.Errorf("bind mount %s is writable", m.Source)
					}
				case "volume":
					if _, ok := c.Volumes[m.Source]; !ok {
						t.Errorf("volume %q is not declared under volumes:", m.Source)
					}
				default:
					t.Errorf("mount %+v: type %q", m, m.Type)
				}
				if !strings.HasPrefix(m.Target, "/") {
					t.Errorf("mount target %q is not absolute", m.Target)
				}
			}
			if name == "setup" {
				return
			}
			if s.User != "" {
				t.Errorf("user %q: long-running services run as the image's unprivileged user", s.User)
			}
			if d, ok := s.DependsOn["setup"]; !ok || d.Condition != "service_completed_successfully" {
				t.Errorf("depends_on setup %+v: want condition service_completed_successfully", d)
			}
			if s.Restart != "on-failure" {
				t.Errorf("restart %q, want on-failure", s.Restart)
			}
			// The CA key lives only in the setup service's volume.
			for _, m := range s.Volumes {
				if m.Source == "ca" {
					t.Errorf("%s mounts the CA volume", name)
				}
			}
		})
	}

	// The aggregator: its command, its configuration loaded for real, the sites.
	agg := c.Services["aggregator"]
	if len(agg.Command) != 3 || agg.Command[0] != "aggregator" || agg.Command[1] != "--config" {
		t.Fatalf("aggregator command %q, want aggregator --config FILE", agg.Command)
	}
	aggCfg := loadAggregatorConfig(t, bindFile(t, root, agg, agg.Command[2]))
	if m, ok := mountAt(agg, aggCfg.Certs); !ok || m.Type != "volume" || !m.ReadOnly {
		t.Errorf("aggregator certs %s: want a read-only volume mounted there, got %+v", aggCfg.Certs, m)
	}
	if m, ok := mountAt(agg, aggCfg.StateDir); !ok || m.Type != "volume" || m.ReadOnly {
		t.Errorf("aggregator state_dir %s: want a writable volume mounted there, got %+v", aggCfg.StateDir, m)
	}
	if got := slices.Sorted(slices.Values(aggCfg.Sites)); !slices.Equal(got, siteIDs) {
		t.Errorf("aggregator sites %v, want %v", got, siteIDs)
	}
	_, port, _ := strings.Cut(aggCfg.Listen, ":")
	if !slices.ContainsFunc(agg.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
		t.Errorf("aggregator listens on %s but publishes %v", aggCfg.Listen, agg.Ports)
	}

	setupScript := bindFile(t, root, c.Services["setup"], c.Services["setup"].Entrypoint[len(c.Services["setup"].Entrypoint)-1])
	serverNames, setupSites := setupNames(t, setupScript)
	if !slices.Equal(setupSites, siteIDs) {
		t.Errorf("setup issues site certificates %v, want %v", setupSites, siteIDs)
	}

	for _, id := range siteIDs {
		s := c.Services["site-"+id]
		if d, ok := s.DependsOn["aggregator"]; !ok || d.Condition == "" {
			t.Errorf("site-%s: depends_on aggregator missing", id)
		}
		if len(s.Command) != 3 || s.Command[0] != "site" || s.Command[1] != "--config" {
			t.Fatalf("site-%s command %q, want site --config FILE", id, s.Command)
		}
		sc, err := localfed.LoadSiteConfig(bindFile(t, root, s, s.Command[2]))
		if err != nil {
			t.Fatalf("site-%s: %v", id, err)
		}
		if sc.SiteID != id {
			t.Errorf("site-%s: site_id %q", id, sc.SiteID)
		}
		if sc.Federation != aggCfg.Federation {
			t.Errorf("site-%s: federation_id %q, the aggregator's is %q", id, sc.Federation, aggCfg.Federation)
		}
		host, sport, _ := strings.Cut(sc.Aggregator.Address, ":")
		if _, ok := c.Services[host]; !ok || sport != port {
			t.Errorf("site-%s dials %s: not the aggregator service's port %s", id, sc.Aggregator.Address, port)
		}
		if name := sc.Aggregator.ServerName; name != "" && !slices.Contains(serverNames, name) {
			t.Errorf("site-%s expects server name %q; the aggregator's certificate has %v", id, name, serverNames)
		}
		// Its own certificates and its own data, read-only, each from a volume of its
		// own that the setup service fills (no volume.subpath: Compose 2.23+ only).
		for _, want := range []struct {
			dir, volume, setup string
		}{{sc.CertsDir, id + "-pki", "/setup/" + id + "/certs"}, {sc.Data[0], id + "-data", "/setup/" + id + "/data"}} {
			m, ok := mountAt(s, want.dir)
			if !ok || m.Type != "volume" || m.Source != want.volume || m.Subpath != "" || !m.ReadOnly {
				t.Errorf("site-%s: %s should mount volume %s read-only, got %+v", id, want.dir, want.volume, m)
			}
			if m, ok := mountAt(c.Services["setup"], want.setup); !ok || m.Source != want.volume {
				t.Errorf("setup does not fill volume %s at %s", want.volume, want.setup)
			}
		}
		if m, ok := mountAt(s, sc.StateDir); !ok || m.Source != id+"-state" || m.ReadOnly {
			t.Errorf("site-%s: state_dir %s should mount writable volume %s-state, got %+v", id, sc.StateDir, id, m)
		}
	}
}

func loadAggregatorConfig(t *testing.T, file string) aggregator.Config {
	t.Helper()
	c, err := localfed.LoadAggregatorConfig(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

var (
	initLine  = regexp.MustCompile(`fedclaims certs init .*--sites (\S+).*--server-names (\S+)`)
	synthLine = regexp.MustCompile(`fedclaims synth .*--hospitals (\d+)`)
)

// setupNames reads the setup script's certs init line: the aggregator's server
// names and the site ids.
func setupNames(t *testing.T, script string) (serverNames, sites []string) {
	t.Helper()
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var synth bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := initLine.FindStringSubmatch(sc.Text()); m != nil {
			sites, serverNames = strings.Split(m[1], ","), strings.Split(m[2], ",")
		}
		if m := synthLine.FindStringSubmatch(sc.Text()); m != nil {
			synth = m[1] == "3"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if sites == nil || !synth {
		t.Fatalf("%s: want a `fedclaims certs init --sites ... --server-names ...` line and a `fedclaims synth --hospitals 3` line", script)
	}
	return serverNames, sites
}

// The Dockerfile builds with OpenBLAS in a Go stage and runs on a slim image with
// only the shared library, as an unprivileged user.
func TestDockerfile(t *testing.T) {
	root, _ := filepath.Abs("..")
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var build bool
	var user string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, strings.Join(f[1:], " "))
		case "RUN":
			if strings.Contains(line, "go build") {
				build = strings.Contains(line, "-tags openblas") && strings.Contains(line, "./cmd/fedclaims")
			}
		case "USER":
			user = f[1]
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:1.26") || !strings.HasSuffix(froms[0], "AS build") {
		t.Errorf("stages %q: want a golang:1.26 build stage and a runtime stage", froms)
	}
	if len(froms) == 2 && !strings.Contains(froms[1], "-slim") {
		t.Errorf("runtime stage %q is not a slim image", froms[1])
	}
	if !build {
		t.Error("no `go build -tags openblas ... ./cmd/fedclaims` step")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "fedclaims", "main.go")); err != nil {
		t.Error(err)
	}
	for _, pkg := range []string{"libopenblas-dev", "libopenblas0"} {
		if !strings.Contains(string(b), pkg) {
			t.Errorf("Dockerfile does not install %s", pkg)
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("runtime user %q: want an unprivileged user", user)
	}
	if !strings.Contains(string(b), "COPY --from=build") {
		t.Error("the runtime stage does not copy the binary from the build stage")
	}
}
