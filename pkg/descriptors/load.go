package descriptors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidConfig is wrapped by the error Parse and Load return when a
// config does not validate; the *Error values of every problem found are
// joined under it (errors.As finds them).
var ErrInvalidConfig = errors.New("descriptors: invalid config")

// Error is one problem of a config. Its message names the file, the
// line, the domain and the descriptor path, for example
//
//	config/a.yaml:12: domain "edge", descriptors[1].descriptors[0] (key "path"): unknown key "rate_limt"
//
// A problem of a source without files (a DomainSpec without positions,
// such as one from xDS) has no File and Line, and its message starts at
// the domain.
type Error struct {
	File   string // "" when the source has no files
	Line   int    // 0 when unknown
	Domain string // "" when the problem is not inside a known domain
	Path   string // descriptor path, "" at the file level
	Msg    string
}

// Error formats the problem as "file:line: domain "d", path: message",
// leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if e.Domain != "" {
		fmt.Fprintf(&b, "domain %q", e.Domain)
		if e.Path != "" {
			b.WriteString(", ")
		}
	}
	b.WriteString(e.Path)
	if e.Domain != "" || e.Path != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads a config source: one file, or every *.yaml and *.yml file of
// a directory (not recursive). In a directory, hidden entries (names
// starting with '.', which includes a mounted Kubernetes ConfigMap's
// "..data" link and "..2024_…" directories) are skipped and visible files
// are read through symlinks, so a mounted ConfigMap loads as its visible
// files. A directory without config files gives an empty Config. Errors
// of the files wrap ErrInvalidConfig; I/O errors are reported as they
// are, wrapped.
func Load(path string) (*Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("descriptors: load: %w", err)
	}
	files := map[string][]byte{}
	if !fi.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("descriptors: load: %w", err)
		}
		files[path] = data
		return Parse(files)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("descriptors: load: %w", err)
	}
	var ioErrs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		ext := strings.ToLower(filepath.Ext(name))
		if ext != ".yaml" && ext != ".yml" {
			continue
		}
		full := filepath.Join(path, name)
		st, err := os.Stat(full) // follows symlinks
		if err != nil {
			ioErrs = append(ioErrs, fmt.Errorf("descriptors: load: %w", err))
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			ioErrs = append(ioErrs, fmt.Errorf("descriptors: load: %w", err))
			continue
		}
		files[full] = data
	}
	if len(ioErrs) > 0 {
		return nil, errors.Join(ioErrs...)
	}
	return Parse(files)
}

// Parse validates and builds a Config from config files given as file
// name → content. Each file becomes a DomainSpec, which Build's builder
// turns into the match tree. Every problem of every file is reported at
// once: the error wraps ErrInvalidConfig and joins one *Error per
// problem, in file name order and then in file order.
func Parse(files map[string][]byte) (*Config, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &Config{domains: map[string]*Domain{}, files: names}
	var errs []error
	definedIn := map[string]string{} // domain → first file, valid or not
	for _, name := range names {
		p := &parser{report: &report{file: name}}
		if spec := p.file1(files[name]); spec != nil {
			c.add(p.report, spec, definedIn)
		}
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].(*Error).Line < p.errs[j].(*Error).Line })
		errs = append(errs, p.errs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	c.sortDomains()
	return c, nil
}

// parser turns the YAML of one file into a DomainSpec, reporting the
// problems of the YAML itself (syntax, unknown keys, wrong kinds).
type parser struct {
	*report
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// file1 parses one file and returns its domain spec, or nil when the
// file has no usable domain map.
func (p *parser) file1(data []byte) *DomainSpec {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg, line := err.Error(), 1
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		}
		p.errorf(line, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errorf(1, "", "empty file: domain must not be empty")
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "", "expected a map with domain and descriptors, got %s", kindName(root))
		return nil
	}
	// The domain names every message of the file, so read it first.
	spec := &DomainSpec{Pos: Pos{File: p.file, Line: root.Line}}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "domain" {
			n := resolve(root.Content[i+1])
			spec.Pos.Line = n.Line
			p.domain, _ = p.scalar(n, "", "domain")
			break
		}
	}
	spec.Name = p.domain
	fields := p.fields(root, "", "", "domain", "descriptors")
	if n := fields["descriptors"]; n != nil {
		spec.Descriptors = p.descriptors(n, "")
	}
	return spec
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected YAML node"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// fields returns the values of map n by key, reporting unknown and
// repeated keys. what prefixes messages ("rate_limit: ").
func (p *parser) fields(n *yaml.Node, path, what string, known ...string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, path, "%sexpected a key, got %s", what, kindName(k))
			continue
		}
		ok := false
		for _, kn := range known {
			if kn == name {
				ok = true
				break
			}
		}
		switch {
		case !ok:
			p.errorf(k.Line, path, "%sunknown key %q (valid keys: %s)", what, name, strings.Join(known, ", "))
		case out[name] != nil:
			p.errorf(k.Line, path, "%skey %q appears twice", what, name)
		default:
			out[name] = v
		}
	}
	return out
}

// scalar returns n's text; null is "". Maps and lists are reported.
func (p *parser) scalar(n *yaml.Node, path, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, path, "%s: expected a string, got %s", field, kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// boolean returns n as a YAML boolean.
func (p *parser) boolean(n *yaml.Node, path, field string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.errorf(n.Line, path, "%s: expected true or false, got %s", field, kindName(n))
		return false
	}
	return b
}

// integer returns n as an integer in [0, max].
func (p *parser) integer(n *yaml.Node, path, field string, max int64) (int64, bool) {
	var v int64
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Decode(&v) == nil && v >= 0 && v <= max {
		return v, true
	}
	p.errorf(n.Line, path, "%s: expected a whole number from 0 to %d, got %s", field, max, kindName(n))
	return 0, false
}
