package descriptors

import "strconv"

// AppendComponent appends s to dst as one component of a collision-free
// key: its length in decimal, a colon, then its bytes ("edge" becomes
// "4:edge"). The encoding is a prefix code, so two different lists of
// components always concatenate to different strings, whatever bytes
// (':' and digits included) the components hold. Throttle UIDs are built
// from it, and the limiter appends the request's identifier values to a
// UID with it, which keeps the full key collision-free.
func AppendComponent(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// uidKindRule and uidKindOverride are the first component of a UID; they
// keep the UIDs of configured rules and of request overrides disjoint.
const (
	uidKindRule     = "r"
	uidKindOverride = "o"
)

// ruleUID returns the throttle UID of the limit at index idx of rule r,
// stepped by the strategy named strategy: the components "r", domain,
// the rule's depth, each level's key and configured value (the wildcard
// pattern as written, "" for a key-only rule), the strategy name and the
// index, each written with AppendComponent.
func ruleUID(domain string, r *Rule, strategy string, idx int) string {
	path := make([]*Rule, r.Depth+1)
	for n := r; n != nil; n = n.Parent {
		path[n.Depth] = n
	}
	b := make([]byte, 0, 64)
	b = AppendComponent(b, uidKindRule)
	b = AppendComponent(b, domain)
	b = AppendComponent(b, strconv.Itoa(len(path)))
	for _, n := range path {
		b = AppendComponent(b, n.Key)
		b = AppendComponent(b, n.Value)
	}
	b = AppendComponent(b, strategy)
	b = AppendComponent(b, strconv.Itoa(idx))
	return string(b)
}
