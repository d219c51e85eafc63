package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// No Docker engine runs where these tests run, so the compose stack and
// the Dockerfile are checked as files: what compose and Docker would be
// told, and that it agrees with what the binaries read.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string                       `yaml:"image"`
	Build           any                          `yaml:"build"`
	ContainerName   string                       `yaml:"container_name"`
	Hostname        string                       `yaml:"hostname"`
	Entrypoint      []string                     `yaml:"entrypoint"`
	Command         []string                     `yaml:"command"`
	Environment     map[string]string            `yaml:"environment"`
	Ports           []string                     `yaml:"ports"`
	Expose          []string                     `yaml:"expose"`
	Volumes         []string                     `yaml:"volumes"`
	DependsOn       map[string]composeDependency `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck          `yaml:"healthcheck"`
	Profiles        []string                     `yaml:"profiles"`
	StopGracePeriod string                       `yaml:"stop_grace_period"`
	Restart         string                       `yaml:"restart"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// oneShots run to completion (schema, namespace) or on demand (the
// starter): they have no health, others wait for them to complete.
var oneShots = []string{"temporal-schema", "temporal-setup", "starter"}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true) // a key this test does not know is a key it does not check
	require.NoError(t, dec.Decode(&c))
	return c
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	var names []string
	for name := range c.Services {
		names = append(names, name)
	}
	assert.ElementsMatch(t, []string{"postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui",
		"devicemock", "worker", "starter"}, names)
	for name, s := range c.Services {
		if s.Build != nil {
			assert.Equal(t, ".", s.Build, "%s is built from the repository's Dockerfile", name)
			assert.Empty(t, s.Image, "%s: built here, not pulled", name)
			require.Len(t, s.Entrypoint, 1, "%s runs one of the image's binaries", name)
		} else {
			assert.NotEmpty(t, s.Image, "%s has an image", name)
		}
	}
	assert.Equal(t, []string{"tools"}, c.Services["starter"].Profiles, "the starter runs on demand")
	// Spec paths (file:///firmware/..., /inventory/...) are resolved by the
	// starter and by the workers alike.
	assert.Equal(t, c.Services["worker"].Volumes, c.Services["starter"].Volumes)
	for _, v := range c.Services["worker"].Volumes {
		assert.True(t, strings.HasSuffix(v, ":ro"), "%s: the worker only reads firmware and inventories", v)
	}
	assert.Contains(t, c.Volumes, "postgresql-data", "PostgreSQL keeps its data in a volume")
}

// Every pulled image is pinned to a version; the Temporal images to the
// same server version.
func TestComposeImagesPinned(t *testing.T) {
	c := loadCompose(t)
	versions := map[string]string{}
	for name, s := range c.Services {
		if s.Image == "" {
			continue
		}
		repo, tag, ok := strings.Cut(s.Image, ":")
		require.True(t, ok, "%s: image %s has no tag", name, s.Image)
		assert.NotContains(t, tag, "latest", "%s: %s", name, s.Image)
		assert.NotContains(t, tag, "$", "%s: %s is pinned here, not by the environment", name, s.Image)
		// PostgreSQL's versions have two parts, Temporal's three.
		assert.Regexp(t, `^\d+\.\d+(\.\d+)?(-[0-9A-Za-z.-]+)?$`, tag, "%s: %s is pinned to a full version", name, s.Image)
		versions[repo] = tag
	}
	server := versions["temporalio/server"]
	require.Regexp(t, `^\d+\.\d+\.\d+$`, server)
	assert.True(t, strings.HasPrefix(versions["temporalio/admin-tools"], server+"-"),
		"admin-tools %s sets up the schema of server %s", versions["temporalio/admin-tools"], server)
	assert.NotEmpty(t, versions["temporalio/ui"])
	assert.True(t, strings.HasPrefix(versions["postgres"], "16."), "PostgreSQL 16, got %s", versions["postgres"])
}

func TestComposePorts(t *testing.T) {
	c := loadCompose(t)
	published := map[string][]string{}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s: %s is published on the host's loopback only (no TLS or auth yet)", name, p)
			published[name] = append(published[name], p[strings.LastIndex(p, ":")+1:])
		}
	}
	assert.Equal(t, map[string][]string{"temporal": {"7233"}, "temporal-ui": {"8080"}, "devicemock": {"9000"}}, published)
	assert.Equal(t, []string{"--listen", "0.0.0.0:9000"}, c.Services["devicemock"].Command[:2], "devicemock listens on the published port")
	assert.Equal(t, "temporal:7233", c.Services["worker"].Environment["TEMPORAL_ADDRESS"])
	assert.Equal(t, "temporal:7233", c.Services["temporal-ui"].Environment["TEMPORAL_ADDRESS"])
}

// docker compose up --scale worker=3 needs a worker without a fixed name
// or host port; its shutdown grace must fit in Docker's stop period.
func TestComposeWorkerScales(t *testing.T) {
	w := loadCompose(t).Services["worker"]
	assert.Empty(t, w.ContainerName)
	assert.Empty(t, w.Hostname)
	assert.Empty(t, w.Ports)
	assert.Equal(t, "unless-stopped", w.Restart)

	grace := defaultShutdownGrace
	if i := slices.Index(w.Command, "--shutdown-grace"); i >= 0 {
		var err error
		grace, err = time.ParseDuration(w.Command[i+1])
		require.NoError(t, err)
	}
	stop, err := time.ParseDuration(w.StopGracePeriod)
	require.NoError(t, err, "the worker sets stop_grace_period (Docker's default is 10s)")
	assert.GreaterOrEqual(t, stop, exitDeadline(grace), "Docker would kill the worker before its shutdown ends")
}

// Long-running services have a health check; every dependency waits for
// health or completion, and one-shots are the ones waited on to complete.
func TestComposeHealthAndDependencies(t *testing.T) {
	c := loadCompose(t)
	built := dockerfileBinaries(t)
	for name, s := range c.Services {
		if slices.Contains(oneShots, name) {
			assert.Nil(t, s.Healthcheck, "%s runs to completion", name)
			continue
		}
		require.NotNil(t, s.Healthcheck, "%s has a health check", name)
		h := s.Healthcheck
		require.NotEmpty(t, h.Test, name)
		assert.Equal(t, "CMD", h.Test[0], "%s: exec form (the built image has no shell)", name)
		assert.NotEmpty(t, h.Interval, name)
		assert.NotEmpty(t, h.Timeout, name)
		assert.Positive(t, h.Retries, name)
		if s.Build != nil {
			assert.Contains(t, built, path.Base(h.Test[1]), "%s: the health check runs a binary of the image", name)
		}
	}
	checks := map[string]string{}
	for name, s := range c.Services {
		if s.Healthcheck != nil {
			checks[name] = strings.Join(s.Healthcheck.Test[1:], " ")
		}
	}
	assert.Contains(t, checks["postgresql"], "pg_isready")
	assert.Contains(t, checks["temporal"], "temporal operator cluster health")
	assert.Contains(t, checks["temporal-ui"], "/healthz")
	assert.Contains(t, checks["devicemock"], "http://127.0.0.1:9000/_fleet/stats")
	w := c.Services["worker"]
	i := slices.Index(w.Command, "--health-listen")
	require.GreaterOrEqual(t, i, 0, "the worker serves /healthz")
	assert.Contains(t, checks["worker"], "http://"+w.Command[i+1]+"/healthz")

	want := map[string]map[string]string{
		"temporal-schema": {"postgresql": "service_healthy"},
		"temporal":        {"temporal-schema": "service_completed_successfully"},
		"temporal-setup":  {"temporal": "service_healthy"},
		"temporal-ui":     {"temporal": "service_healthy"},
		"worker":          {"temporal": "service_healthy", "temporal-setup": "service_completed_successfully"},
		"starter":         {"temporal": "service_healthy", "temporal-setup": "service_completed_successfully"},
	}
	for name, s := range c.Services {
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
			switch d.Condition {
			case "service_healthy":
				assert.NotNil(t, c.Services[dep].Healthcheck, "%s waits for %s to be healthy", name, dep)
			case "service_completed_successfully":
				assert.Contains(t, oneShots, dep, "%s waits for %s to complete", name, dep)
			default:
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
		if want[name] == nil {
			assert.Empty(t, got, name)
		} else {
			assert.Equal(t, want[name], got, name)
		}
	}
}

// The namespace gets the product's search attributes before any worker
// starts: scaled-out workers would otherwise race to add them.
func TestComposeRegistersSearchAttributes(t *testing.T) {
	setup := strings.Join(loadCompose(t).Services["temporal-setup"].Command, "\n")
	for _, name := range workflows.SearchAttributeNames {
		assert.Contains(t, setup, "--name "+name+" --type Keyword")
	}
	assert.Contains(t, setup, "temporal operator namespace create")
}

// Every environment variable a binary reads is set on each service that
// runs it. The variables come from the binary's source: the EnvVars of
// its flags and its os.Getenv/os.LookupEnv calls, in every package of
// this module it links. A new variable without compose wiring fails here.
func TestComposeSetsEveryEnvVar(t *testing.T) {
	c := loadCompose(t)
	checked := 0
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		binary := path.Base(s.Entrypoint[0])
		vars := envVarsReadBy(t, "./"+binary)
		if binary == "worker" {
			require.Contains(t, vars, "TEMPORAL_ADDRESS", "the scan finds the connection flags")
			require.Contains(t, vars, "DEVICE_TOKEN", "the scan finds os.Getenv")
		}
		for _, v := range vars {
			assert.Contains(t, s.Environment, v, "%s reads $%s; set it on service %s", binary, v, name)
			checked++
		}
	}
	assert.Positive(t, checked)
}

// envVarsReadBy lists the environment variables the main package pkg
// (relative to the module root) and this module's packages it imports
// read.
func envVarsReadBy(t *testing.T, pkg string) []string {
	t.Helper()
	module := "github.com/dovaclean/go-update-orchestrator"
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \",\"}}", pkg)
	cmd.Dir = ".."
	out, err := cmd.Output()
	require.NoError(t, err, "go list %s", pkg)
	files := map[string][]string{} // import path -> files
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		parts := strings.Split(strings.TrimSpace(line), "\t")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], module) {
			continue
		}
		for f := range strings.SplitSeq(parts[2], ",") {
			files[parts[0]] = append(files[parts[0]], filepath.Join(parts[1], f))
		}
	}
	require.NotEmpty(t, files, "go list found no package of this module for %s", pkg)
	scan := newEnvScan(t)
	for importPath, paths := range files {
		scan.parse(importPath, paths)
	}
	return scan.vars()
}

// envScan finds environment variable names in parsed packages. Names
// must be string literals or constants, so that they can be found here.
type envScan struct {
	t      *testing.T
	fset   *token.FileSet
	files  map[string][]*ast.File       // import path -> files
	consts map[string]map[string]string // import path -> string constants
}

func newEnvScan(t *testing.T) *envScan {
	return &envScan{t: t, fset: token.NewFileSet(), files: map[string][]*ast.File{}, consts: map[string]map[string]string{}}
}

func (s *envScan) parse(importPath string, paths []string) {
	s.consts[importPath] = map[string]string{}
	for _, p := range paths {
		f, err := parser.ParseFile(s.fset, p, nil, 0)
		require.NoError(s.t, err)
		s.files[importPath] = append(s.files[importPath], f)
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, value := range vs.Values {
					if lit, ok := value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s.consts[importPath][vs.Names[i].Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
}

func (s *envScan) vars() []string {
	found := map[string]bool{}
	for importPath, files := range s.files {
		for _, f := range files {
			imports := fileImports(f)
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.KeyValueExpr:
					if key, ok := n.Key.(*ast.Ident); ok && key.Name == "EnvVars" {
						list, ok := n.Value.(*ast.CompositeLit)
						require.True(s.t, ok, "%s: EnvVars must be a []string{...} literal", s.fset.Position(n.Pos()))
						for _, e := range list.Elts {
							found[s.name(importPath, imports, e)] = true
						}
					}
				case *ast.CallExpr:
					fn, ok := n.Fun.(*ast.SelectorExpr)
					if !ok || (fn.Sel.Name != "Getenv" && fn.Sel.Name != "LookupEnv") {
						return true
					}
					if x, ok := fn.X.(*ast.Ident); ok && imports[x.Name] == "os" && len(n.Args) == 1 {
						found[s.name(importPath, imports, n.Args[0])] = true
					}
				}
				return true
			})
		}
	}
	var names []string
	for name := range found {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// name resolves an environment variable name: a string literal, or a
// string constant of this package or another scanned one.
func (s *envScan) name(importPath string, imports map[string]string, e ast.Expr) string {
	switch e := e.(type) {
	case *ast.BasicLit:
		if v, err := strconv.Unquote(e.Value); err == nil {
			return v
		}
	case *ast.Ident:
		if v, ok := s.consts[importPath][e.Name]; ok {
			return v
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if v, ok := s.consts[imports[x.Name]][e.Sel.Name]; ok {
				return v
			}
		}
	}
	s.t.Fatalf("%s: an environment variable name must be a string literal or constant", s.fset.Position(e.Pos()))
	return ""
}

// fileImports maps the names a file uses for its imports to their paths.
func fileImports(f *ast.File) map[string]string {
	imports := map[string]string{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := path.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imports[name] = p
	}
	return imports
}

// The Dockerfile builds static binaries with -trimpath from pinned base
// images, and runs them as a non-root user with CA certificates.
func TestDockerfileBuildsStaticPinned(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	var stages []string
	from := regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$`)
	var final []string // instructions of the last stage
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := from.FindStringSubmatch(line); m != nil {
			image := m[1]
			if image != "scratch" && !slices.Contains(stages, image) {
				_, tag, ok := strings.Cut(image, ":")
				require.True(t, ok, "base image %s has no tag", image)
				assert.Regexp(t, `^\d+\.\d+\.\d+`, tag, "base image %s is pinned to a full version", image)
			}
			stages = append(stages, m[2])
			final = nil
		}
		final = append(final, line)
	}
	text := string(data)
	assert.Regexp(t, `ENV\s+CGO_ENABLED=0`, text, "static binaries")
	build := regexp.MustCompile(`RUN go build .*`).FindString(text)
	require.NotEmpty(t, build)
	assert.Contains(t, build, "-trimpath")
	assert.Regexp(t, `^FROM (scratch|gcr\.io/distroless/static)`, final[0], "a final stage with nothing but the binaries")
	finalText := strings.Join(final, "\n")
	assert.Contains(t, finalText, "ca-certificates.crt")
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(finalText)
	require.NotNil(t, user, "the final stage names a user")
	assert.NotContains(t, []string{"0", "root", "0:0"}, user[1])

	for _, binary := range []string{"worker", "starter", "devicemock", "healthcheck"} {
		assert.Contains(t, dockerfileBinaries(t), binary)
	}
}

// dockerfileBinaries are the commands the Dockerfile's go build makes.
func dockerfileBinaries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	build := regexp.MustCompile(`RUN go build .*`).FindString(string(data))
	var binaries []string
	for _, arg := range strings.Fields(build) {
		if strings.HasPrefix(arg, "./") {
			binaries = append(binaries, path.Base(arg))
		}
	}
	require.NotEmpty(t, binaries, fmt.Sprintf("no packages in %q", build))
	return binaries
}
