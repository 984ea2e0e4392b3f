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

// Error is one problem of a config file. Its message names the file, the
// line, the domain and the descriptor path, for example
//
//	config/a.yaml:12: domain "edge", descriptors[1].descriptors[0] (key "path"): unknown key "rate_limt"
type Error struct {
	File   string
	Line   int
	Domain string // "" when the problem is not inside a known domain
	Path   string // descriptor path, "" at the file level
	Msg    string
}

// Error formats the problem as "file:line: domain "d", path: message".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
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
func Load(path string) (*Config, error) { return load(path, Parse) }

// load reads the files of path as Load describes and builds them with
// parse.
func load(path string, parse func(map[string][]byte) (*Config, error)) (*Config, error) {
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
		return parse(files)
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
	return parse(files)
}

// Parse validates and builds a Config from config files given as file
// name → content. Every problem of every file is reported at once: the
// error wraps ErrInvalidConfig and joins one *Error per problem, in file
// name order and then in file order.
func Parse(files map[string][]byte) (*Config, error) { return parse(files, false) }

// parse is Parse; merge merges the files that share a domain (see
// ParseMerged) instead of refusing them.
func parse(files map[string][]byte, merge bool) (*Config, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &Config{domains: map[string]*Domain{}, files: names}
	var errs []error
	definedIn := map[string]string{} // domain → first file, valid or not
	for _, name := range names {
		p := &parser{file: name}
		d := p.file1(files[name])
		if d != nil {
			if prev, dup := definedIn[d.Name]; dup && merge {
				if into := c.domains[d.Name]; into != nil && len(p.errs) == 0 {
					c.rules += mergeDomain(p, into, d)
				}
			} else if dup {
				p.errorf(p.domainLine, "", "domain %q is already defined in %s", d.Name, prev)
			} else if definedIn[d.Name] = name; len(p.errs) == 0 {
				c.domains[d.Name] = d
				c.rules += len(d.rules)
			}
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

// parser collects the problems of one file.
type parser struct {
	file       string
	domain     string
	domainLine int
	errs       []error
}

func (p *parser) errorf(line int, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Domain: p.domain, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// file1 parses one file and returns its domain, or nil when the file has
// no usable domain.
func (p *parser) file1(data []byte) *Domain {
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
	p.domainLine = root.Line
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "domain" {
			n := resolve(root.Content[i+1])
			p.domainLine = n.Line
			p.domain, _ = p.scalar(n, "", "domain")
			break
		}
	}
	fields := p.fields(root, "", "", "domain", "descriptors")
	if p.domain == "" {
		p.errorf(p.domainLine, "", "domain must not be empty")
	}
	d := &Domain{Name: p.domain, File: p.file}
	if n := fields["descriptors"]; n != nil {
		p.descriptors(d, n, nil, &d.root, "")
	}
	if p.domain == "" {
		return nil
	}
	return d
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
