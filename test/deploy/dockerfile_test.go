package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile returns the instructions of a Dockerfile, skipping
// comments and blank lines and joining lines ending in a backslash.
func parseDockerfile(data []byte) ([]instruction, error) {
	var (
		out     []instruction
		cur     strings.Builder
		startAt int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			startAt = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: startAt})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("deploy: dockerfile: %w", err)
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("deploy: dockerfile: line %d: unterminated continuation", startAt)
	}
	return out, nil
}

// stage is one FROM ... of a Dockerfile.
type stage struct {
	from, name string
	ins        []instruction
}

// stages splits instructions into build stages; global ARGs (before the
// first FROM) are returned as a map of defaults.
func stages(ins []instruction) (map[string]string, []stage) {
	global := map[string]string{}
	var out []stage
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			out = append(out, s)
		case len(out) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			global[k] = v
		case len(out) > 0:
			out[len(out)-1].ins = append(out[len(out)-1].ins, in)
		}
	}
	return global, out
}

// shellWords splits a shell command line into words, honouring single
// and double quotes (enough for the Dockerfile's RUN line).
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("deploy: unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand replaces ${NAME} and $NAME with vars[NAME]; unknown names are
// reported.
func expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("deploy: undefined variables %v in %q", missing, s)
	}
	return out, nil
}

// goBuild is the `go build` of the Dockerfile's build stage.
type goBuild struct {
	env     []string // NAME=value before `go build`
	flags   []string // between `build` and the package, without -o
	ldflags string
	output  string
	pkg     string
}

// dockerfileBuild finds the build stage's `go build` RUN line.
func dockerfileBuild(t *testing.T, st stage, vars map[string]string) goBuild {
	t.Helper()
	for _, in := range st.ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words, err := shellWords(in.args)
		if err != nil {
			t.Fatal(err)
		}
		var b goBuild
		i := 0
		for ; i < len(words) && strings.Contains(words[i], "="); i++ {
			v, err := expand(words[i], vars)
			if err != nil {
				t.Fatalf("Dockerfile line %d: %v", in.line, err)
			}
			b.env = append(b.env, v)
		}
		if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
			t.Fatalf("Dockerfile line %d: the RUN line is not `[VAR=value...] go build ...`", in.line)
		}
		rest := words[i+2:]
		for j := 0; j < len(rest); j++ {
			w, err := expand(rest[j], vars)
			if err != nil {
				t.Fatalf("Dockerfile line %d: %v", in.line, err)
			}
			switch {
			case w == "-o" && j+1 < len(rest):
				b.output = rest[j+1]
				j++
			case w == "-ldflags" && j+1 < len(rest):
				b.ldflags, err = expand(rest[j+1], vars)
				if err != nil {
					t.Fatal(err)
				}
				j++
			case strings.HasPrefix(w, "-"):
				b.flags = append(b.flags, w)
			default:
				b.pkg = w
			}
		}
		return b
	}
	t.Fatal("Dockerfile: no `go build` RUN line in the build stage")
	return goBuild{}
}

// loadDockerfile parses the repository's Dockerfile into its build and
// final stages.
func loadDockerfile(t *testing.T) (global map[string]string, build, final stage) {
	t.Helper()
	ins, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	global, sts := stages(ins)
	if len(sts) != 2 {
		t.Fatalf("Dockerfile: %d stages, want 2 (build, runtime)", len(sts))
	}
	return global, sts[0], sts[1]
}

// instructionsOf returns the args of every cmd instruction of st.
func instructionsOf(st stage, cmd string) []string {
	var out []string
	for _, in := range st.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// execForm decodes a JSON exec form such as ["/envoy-rls", "serve"].
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		t.Fatalf("Dockerfile %s %s: not the exec form (the image has no shell): %v", what, args, err)
	}
	return v
}

// dockerfilePorts returns the final stage's EXPOSEd ports.
func dockerfilePorts(t *testing.T) []string {
	t.Helper()
	_, _, final := loadDockerfile(t)
	var ports []string
	for _, e := range instructionsOf(final, "EXPOSE") {
		for _, p := range strings.Fields(e) {
			ports = append(ports, strings.TrimSuffix(p, "/tcp"))
		}
	}
	return ports
}

func TestDockerfileRuntimeStage(t *testing.T) {
	global, build, final := loadDockerfile(t)

	// The builder's Go is the go.mod's major.minor.
	gomod := string(readRepoFile(t, "go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	from, err := expand(build.from, global)
	if err != nil {
		t.Fatal(err)
	}
	if from != "golang:"+m[1] {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod's go)", from, m[1])
	}

	if final.from != "gcr.io/distroless/static-debian12:nonroot" && final.from != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static nonroot or scratch", final.from)
	}
	if u := instructionsOf(final, "USER"); len(u) != 1 || !strings.HasPrefix(u[0], "65532") {
		t.Errorf("final stage USER %v, want the numeric 65532 (Kubernetes checks runAsNonRoot on it)", u)
	}
	ports := dockerfilePorts(t)
	for _, want := range []string{"8080", "8081", "6070"} {
		if !slices.Contains(ports, want) {
			t.Errorf("EXPOSE %v lacks %s", ports, want)
		}
	}

	b := dockerfileBuild(t, build, map[string]string{"VERSION": "v", "TARGETOS": "linux", "TARGETARCH": "amd64"})
	// The binary, and the same binary as /bin/ratelimit, the command
	// Envoy Gateway runs (the image has no shell to make a link).
	copies := instructionsOf(final, "COPY")
	want := []string{"--from=" + build.name + " " + b.output + " /envoy-rls", "--from=" + build.name + " " + b.output + " /bin/ratelimit"}
	if !slices.Equal(copies, want) {
		t.Errorf("final stage COPY %v, want %v", copies, want)
	}

	ep := instructionsOf(final, "ENTRYPOINT")
	if len(ep) != 1 || !slices.Equal(execForm(t, "ENTRYPOINT", ep[0]), []string{"/envoy-rls"}) {
		t.Errorf("ENTRYPOINT %v, want [\"/envoy-rls\"]", ep)
	}
	cmd := instructionsOf(final, "CMD")
	if len(cmd) != 1 || !slices.Equal(execForm(t, "CMD", cmd[0]), []string{"serve", "--config", "/etc/envoy-rls"}) {
		t.Errorf("CMD %v, want [\"serve\", \"--config\", \"/etc/envoy-rls\"]", cmd)
	}

	hc := instructionsOf(final, "HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("want one HEALTHCHECK, have %d", len(hc))
	}
	_, probe, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc[0])
	}
	args := execForm(t, "HEALTHCHECK CMD", probe)
	if len(args) < 2 || args[0] != "/envoy-rls" || args[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK CMD %v, want /envoy-rls healthcheck ...", args)
	}
}

// TestDockerfileBuildFlags checks that the Dockerfile builds with the
// Makefile's flags, then builds the binary exactly as the Dockerfile
// does and checks the result: static, stripped, version stamped, and
// with the healthcheck subcommand the image's HEALTHCHECK runs.
func TestDockerfileBuildFlags(t *testing.T) {
	_, build, _ := loadDockerfile(t)
	b := dockerfileBuild(t, build, map[string]string{
		"VERSION": "${VERSION}", "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
	})
	if !slices.Contains(b.env, "CGO_ENABLED=0") {
		t.Errorf("go build env %v lacks CGO_ENABLED=0", b.env)
	}
	// The release build: trimmed paths and go-control-plane's vtprotobuf
	// encoders, the same flags as the Makefile's build target.
	want := []string{"-trimpath", "-tags=vtprotobuf"}
	if !slices.Equal(b.flags, want) {
		t.Errorf("go build flags %v, want %v", b.flags, want)
	}
	mkBuild := regexp.MustCompile(`(?m)^\t.*\$\(GO\) build (.*)$`).FindStringSubmatch(string(readRepoFile(t, "Makefile")))
	if mkBuild == nil {
		t.Fatal("Makefile: no $(GO) build line")
	}
	for _, f := range want {
		if !strings.Contains(mkBuild[1], f) {
			t.Errorf("Makefile build line %q lacks %s", mkBuild[1], f)
		}
	}
	if b.pkg != "./cmd/envoy-rls" {
		t.Errorf("go build package %q, want ./cmd/envoy-rls", b.pkg)
	}
	// The Makefile's LDFLAGS with $(VERSION) is the same as the
	// Dockerfile's with ${VERSION}.
	mk := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.*)$`).FindStringSubmatch(string(readRepoFile(t, "Makefile")))
	if mk == nil {
		t.Fatal("Makefile: no LDFLAGS")
	}
	if got, want := b.ldflags, strings.ReplaceAll(strings.TrimSpace(mk[1]), "$(VERSION)", "${VERSION}"); got != want {
		t.Errorf("Dockerfile -ldflags %q, Makefile LDFLAGS %q", got, want)
	}

	// Build as the image does.
	b = dockerfileBuild(t, build, map[string]string{
		"VERSION": "deploytest", "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
	})
	bin := filepath.Join(t.TempDir(), "envoy-rls")
	args := append([]string{"build"}, b.flags...)
	args = append(args, "-ldflags", b.ldflags, "-o", bin, b.pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), b.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v); the distroless static image has no libc", p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not apply")
	}

	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "envoy-rls deploytest" {
		t.Errorf("envoy-rls version: %q (%v), want \"envoy-rls deploytest\"", out, err)
	}
	// Nothing listens on port 1: the probe must fail with exit 1, as
	// Docker's HEALTHCHECK expects, not with a usage error.
	out, err = exec.CommandContext(ctx, bin, "healthcheck", "--addr", "127.0.0.1:1", "--timeout", "500ms").CombinedOutput()
	var exitErr *exec.ExitError
	if err == nil || !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("envoy-rls healthcheck against a closed port: %v, want exit status 1\n%s", err, out)
	}
}

// dockerignoreExcludes reports whether the .dockerignore patterns
// exclude rel (slash-separated, relative to the context), with Docker's
// rules: a pattern matches the path or one of its parent directories,
// "**" matches any number of directories, "!" re-includes, the last
// matching pattern wins.
func dockerignoreExcludes(patterns []string, rel string) bool {
	excluded := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		re := regexp.MustCompile("^" + globToRegexp(p) + "(/.*)?$")
		if re.MatchString(rel) {
			excluded = !neg
		}
	}
	return excluded
}

// globToRegexp translates a .dockerignore glob to a regular expression.
func globToRegexp(p string) string {
	var sb strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					sb.WriteString("(.*/)?")
				} else {
					sb.WriteString(".*")
				}
			} else {
				sb.WriteString("[^/]*")
			}
		case '?':
			sb.WriteString("[^/]")
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return sb.String()
}

// TestDockerignoreKeepsBuildInputs checks that .dockerignore leaves in the
// build context every file `go build ./cmd/envoy-rls` reads.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(string(readRepoFile(t, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	root := repoRoot(t)
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`, "./cmd/envoy-rls")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	if len(files) < 5 {
		t.Fatalf("go list found only %v", files)
	}
	for _, f := range files {
		if dockerignoreExcludes(patterns, f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
	for _, f := range []string{".git/HEAD", "docs/deployment.md", "helm/envoy-rls/Chart.yaml", "pkg/descriptors/match_test.go"} {
		if !dockerignoreExcludes(patterns, f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}

// TestDockerfileLint lints the Dockerfile with dockerfile-utils (npm),
// through the script the Makefile uses. Without npm it is skipped, except
// under CI=true.
func TestDockerfileLint(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no npm install")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npm is missing; CI needs it to lint the Dockerfile")
		}
		t.Skip("npm is missing")
	}
	script := filepath.Join(repoRoot(t), "test", "deploy", "scripts", "dockerfile-lint.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, script).CombinedOutput(); err != nil {
		t.Fatalf("dockerfile-lint: %v\n%s", err, out)
	}
	// The linter rejects a broken Dockerfile, so passing means something.
	bad := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(bad, []byte("FROM scratch\nHEALTHCHECK --interva=1s CMD [\"x\"]\nFOO bar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, script, bad).CombinedOutput(); err == nil {
		t.Fatalf("dockerfile-lint accepted a broken Dockerfile:\n%s", out)
	}
}
