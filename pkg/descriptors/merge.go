package descriptors

// mergeDomain is envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG (Limits.
// MergeDomains): files that share a domain are merged into one domain
// instead of refused. As in the reference, the files are taken in name
// order and their top-level descriptors are joined: a descriptor whose
// key and value a previous file of the domain already has at the top
// level is an error naming both files (nested descriptors are not merged,
// they come with their top-level descriptor). Wildcard rules keep their
// file order, the earlier files' first.
//
// mergeDomain adds the top-level rules of d, built by p from a later
// file, to into, reporting a key and value into already has. It returns
// the number of rules added.
func mergeDomain(p *report, into, d *Domain) int {
	for _, g := range d.root.byKey {
		for _, r := range g.rules() {
			if prev := into.root.find1(r); prev != nil {
				p.errorf(r.Line, "", "duplicate descriptor composite key %q: already defined in %s:%d", r.Path, into.File, prev.Line)
				continue
			}
			p.insert(&into.root, r, r.Line, "")
		}
	}
	into.rules = append(into.rules, d.rules...)
	return len(d.rules)
}

// rules returns the group's rules: the key-only rule, the exact values,
// then the wildcards in file order.
func (g *keyGroup) rules() []*Rule {
	var out []*Rule
	if g.keyOnly != nil {
		out = append(out, g.keyOnly)
	}
	for _, r := range g.exact {
		out = append(out, r)
	}
	return append(out, g.wildcard...)
}

// find1 returns the rule of this level with r's key and configured value
// (not a match of a request: a wildcard is found only by its own pattern).
func (l *level) find1(r *Rule) *Rule {
	g := l.byKey[r.Key]
	if g == nil {
		return nil
	}
	switch {
	case r.Value == "":
		return g.keyOnly
	case r.Wildcard():
		for _, w := range g.wildcard {
			if w.Value == r.Value {
				return w
			}
		}
		return nil
	default:
		return g.exact[r.Value]
	}
}
