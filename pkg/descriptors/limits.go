package descriptors

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Defaults of Limits; a zero field of Limits means its default.
const (
	// DefaultMaxBytes bounds the config files read by one load together:
	// 2 MiB, twice the largest Kubernetes ConfigMap. Parsing YAML costs
	// up to about 100 MB of memory per MiB (a file of nothing but
	// one-character list items), so the bound is what keeps a load, and
	// a refused reload, within a few hundred MB.
	DefaultMaxBytes = 2 << 20
	// DefaultMaxNodes bounds the YAML nodes of one file once its aliases
	// are expanded. A file without aliases never reaches it within
	// DefaultMaxBytes unless it holds very short items; aliases that
	// repeat a block many times do.
	DefaultMaxNodes = 1 << 20
	// DefaultMaxDepth bounds how deep the YAML of one file nests once its
	// aliases are expanded; real descriptor trees are a handful deep.
	DefaultMaxDepth = 200
	// DefaultMaxErrors bounds the problems an error lists; the rest are
	// counted in a last line.
	DefaultMaxErrors = 100
)

// Limits bound the work and memory of Load and Parse, so that no config
// file, however large or self-referencing, takes the service down. The
// zero value means the defaults.
type Limits struct {
	// MergeDomains merges the files that share a domain, as the
	// reference's MERGE_DOMAIN_CONFIG does (see mergeDomain), instead of
	// refusing the second one. It is not a bound, but it rides with the
	// bounds since every load passes them.
	MergeDomains bool
	// MaxBytes bounds the bytes of all files one Load reads (default
	// DefaultMaxBytes). Parse does not read files and ignores it.
	MaxBytes int64
	// MaxNodes bounds the YAML nodes of one file, counting a node again
	// each time an alias refers to it (default DefaultMaxNodes).
	MaxNodes int64
	// MaxDepth bounds the nesting of one file's YAML, aliases expanded
	// (default DefaultMaxDepth).
	MaxDepth int
	// MaxErrors bounds the problems listed in the error (default
	// DefaultMaxErrors); the error counts the others in a last line,
	// "... and N more problems".
	MaxErrors int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = DefaultMaxNodes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxErrors <= 0 {
		l.MaxErrors = DefaultMaxErrors
	}
	return l
}

// ErrTooLarge is wrapped by the error of Load when the config files
// together are larger than Limits.MaxBytes.
var ErrTooLarge = errors.New("descriptors: config too large")

// ErrNotRegular is wrapped by the error of Load when a config path, or a
// config file of a directory, is not a regular file (a FIFO, a device, a
// socket), directly or through a symlink.
var ErrNotRegular = errors.New("descriptors: not a regular file")

// readLimited reads the regular file at path (following symlinks) when it
// holds at most budget bytes. It never blocks on a FIFO and never reads
// more than budget+1 bytes, whatever the file claims its size is.
func readLimited(path string, budget int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, modeName(st.Mode()))
	}
	if st.Size() > budget {
		return nil, tooLarge(path, st.Size(), budget)
	}
	// O_NONBLOCK: should the path turn into a FIFO between Stat and Open,
	// the open does not wait for a writer; Fstat below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, modeName(st.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, budget+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > budget {
		return nil, tooLarge(path, -1, budget)
	}
	return data, nil
}

func tooLarge(path string, size, budget int64) error {
	if size < 0 {
		return fmt.Errorf("%w: %s holds more than the %d bytes left of the limit (--config-max-bytes)", ErrTooLarge, path, budget)
	}
	return fmt.Errorf("%w: %s is %d bytes, more than the %d bytes left of the limit (--config-max-bytes)", ErrTooLarge, path, size, budget)
}

func modeName(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// expansion measures a YAML tree as the parser will walk it, aliases
// followed, without expanding anything: the size and height of each
// anchored node are computed once and reused at every alias to it, so the
// cost is linear in the tree as parsed, however often aliases repeat it.
type expansion struct {
	lim     Limits
	nodes   int64
	aliases bool                  // an alias has been followed
	memo    map[*yaml.Node]extent // anchored nodes measured
	open    map[*yaml.Node]bool   // anchored nodes being measured (cycle check)
}

type extent struct{ size, height int64 }

// errExpansion stops the walk once a bound is passed; the problem is
// already recorded.
var errExpansion = errors.New("expansion bound passed")

// checkExpansion reports, on p, a problem that stops the parse of a file
// when its YAML refers to itself through an alias (a cycle), or expands
// past lim.MaxNodes nodes or lim.MaxDepth levels. It returns false then.
func (p *parser) checkExpansion(root *yaml.Node, lim Limits) bool {
	x := &expansion{lim: lim, memo: map[*yaml.Node]extent{}, open: map[*yaml.Node]bool{}}
	_, err := x.measure(p, root, 1)
	return err == nil
}

// measure returns the extent of n found at depth.
func (x *expansion) measure(p *parser, n *yaml.Node, depth int64) (extent, error) {
	if n == nil {
		return extent{}, nil
	}
	if int(depth) > x.lim.MaxDepth {
		p.errorf(n.Line, "", "the YAML nests more than %d levels deep (aliases expanded)", x.lim.MaxDepth)
		return extent{}, errExpansion
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if target == nil {
			return extent{size: 1, height: 1}, x.count(p, n, 1)
		}
		if x.open[target] {
			p.errorf(n.Line, "", "alias *%s refers to the node that holds it (anchor &%s at line %d): a cycle", n.Value, target.Anchor, target.Line)
			return extent{}, errExpansion
		}
		if e, ok := x.memo[target]; ok {
			if depth-1+e.height > int64(x.lim.MaxDepth) {
				p.errorf(n.Line, "", "the YAML nests more than %d levels deep (aliases expanded)", x.lim.MaxDepth)
				return extent{}, errExpansion
			}
			return e, x.count(p, n, e.size)
		}
		x.aliases = true
		// The alias is not a node of the expanded tree: its target,
		// walked in its place, is.
		return x.measure(p, target, depth)
	}
	if n.Anchor != "" {
		x.open[n] = true
		defer delete(x.open, n)
	}
	e := extent{size: 1, height: 1}
	if err := x.count(p, n, 1); err != nil {
		return e, err
	}
	for _, c := range n.Content {
		ce, err := x.measure(p, c, depth+1)
		if err != nil {
			return e, err
		}
		e.size = satAdd(e.size, ce.size)
		e.height = max(e.height, ce.height+1)
	}
	if n.Anchor != "" {
		x.memo[n] = e
	}
	return e, nil
}

// count adds k nodes met at n to the file's total.
func (x *expansion) count(p *parser, n *yaml.Node, k int64) error {
	x.nodes = satAdd(x.nodes, k)
	if x.nodes > x.lim.MaxNodes {
		switch {
		case n.Kind == yaml.AliasNode:
			p.errorf(n.Line, "", "alias *%s expands the file past %d YAML nodes: aliases repeat too much (write the repeated part out, or split the file)", n.Value, x.lim.MaxNodes)
		case x.aliases:
			p.errorf(n.Line, "", "the file expands past %d YAML nodes with its aliases followed (write the repeated part out, or split the file)", x.lim.MaxNodes)
		default:
			p.errorf(n.Line, "", "the file holds more than %d YAML nodes (split it)", x.lim.MaxNodes)
		}
		return errExpansion
	}
	return nil
}

// satAdd adds two non-negative counts, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// errorBudget lets the parsers of one Parse format at most a given number
// of problems; past it, problems are only counted, so that a file of a
// million mistakes costs a counter rather than a million messages.
type errorBudget struct {
	left    int
	dropped int
}

// take reports whether one more problem may be formatted, counting it as
// dropped when not.
func (b *errorBudget) take() bool {
	if b == nil {
		return true
	}
	if b.left > 0 {
		b.left--
		return true
	}
	b.dropped++
	return false
}

// droppedError is what a parser records for a problem past the budget;
// Parse removes these and counts them in one line.
var droppedError = &Error{Line: math.MaxInt, Msg: "problem past the error budget"}

// withoutDropped returns errs without the dropped problems.
func withoutDropped(errs []error) []error {
	out := errs[:0]
	for _, e := range errs {
		if e != error(droppedError) {
			out = append(out, e)
		}
	}
	return out
}

// moreProblems is the last line of an error whose list was cut.
func moreProblems(n int) error {
	return fmt.Errorf("... and %d more problems", n)
}

// maxErrorField bounds each part of an Error's text, so that a value of a
// megabyte quoted in a message does not make a line of a megabyte.
const maxErrorField = 512

// clip shortens s to at most maxErrorField bytes, cut at a character
// boundary and marked with "...".
func clip(s string) string {
	if len(s) <= maxErrorField {
		return s
	}
	cut := maxErrorField - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
