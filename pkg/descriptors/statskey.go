package descriptors

// Stats keys: the names envoyproxy/ratelimit gives the statistics of a
// matched rule ("domain.key_value.key", see AppendStatsKey), which its
// users' dashboards and alerts are built on.

// StatsKeyDynamic reports whether the stats key of rule r depends on the
// request's values, not only on the rule: when r has detailed_metric, or
// some rule on its path has value_to_metric on a key-only or wildcard
// value without share_threshold. A rule whose key is not dynamic has the
// stats key r.Path.
func (r *Rule) StatsKeyDynamic() bool {
	if r.DetailedMetric {
		return true
	}
	for x := r; x != nil; x = x.Parent {
		if x.ValueToMetric && (x.Value == "" || x.Wildcard() && !x.ShareThreshold) {
			return true
		}
	}
	return false
}

// AppendStatsKey appends to dst the stats key the reference service gives
// a request descriptor whose entries matched rule r of domain (r is what
// Domain.Match returned for entries, so r.Depth+1 == len(entries)), and
// returns the extended buffer. The key is the domain followed by one part
// per level, joined by '.':
//
//   - when r has detailed_metric, every part is key_value with the
//     request's value ("key_" when it is empty); but when a rule on the
//     path is a wildcard with share_threshold, that part is key_pattern
//     and the others key_value, or key alone for an empty value;
//   - otherwise, a rule with a configured value gives key_value; a
//     wildcard gives key_pattern, or key_value with the request's value
//     when it has value_to_metric and not share_threshold; a key-only
//     rule gives key, or key_value when it has value_to_metric and the
//     request's value is not empty.
//
// For example, route=draw, http_method=GET, subject_id=123 matching
// key-only rules with value_to_metric on route and http_method gives
// "domain.route_draw.http_method_GET.subject_id". AppendStatsKey does not
// allocate when dst has room. It appends only the domain when r and
// entries do not fit together.
func AppendStatsKey(dst []byte, domain string, r *Rule, entries []Entry) []byte {
	dst = append(dst, domain...)
	if r == nil || r.Depth+1 != len(entries) {
		return dst
	}
	if !r.DetailedMetric {
		return appendValueToMetric(dst, r, entries)
	}
	shared := false
	for x := r; x != nil; x = x.Parent {
		if x.ShareThreshold && x.Wildcard() {
			shared = true
			break
		}
	}
	return appendDetailed(dst, r, entries, shared)
}

// appendValueToMetric appends the parts of the rules from the top level
// down to r, for a rule without detailed_metric.
func appendValueToMetric(dst []byte, r *Rule, entries []Entry) []byte {
	if r.Parent != nil {
		dst = appendValueToMetric(dst, r.Parent, entries)
	}
	e := entries[r.Depth]
	dst = append(dst, '.')
	dst = append(dst, r.Key...)
	var v string
	switch {
	case r.Wildcard() && r.ShareThreshold:
		v = r.Value
	case r.Wildcard() && r.ValueToMetric:
		v = e.Value
	case r.Wildcard(), r.Value != "":
		v = r.Value
	case r.ValueToMetric:
		v = e.Value
	}
	if v != "" {
		dst = append(dst, '_')
		dst = append(dst, v...)
	}
	return dst
}

// appendDetailed appends the parts of a detailed_metric rule's key.
// shared reports that some rule on the path shares its counter
// (share_threshold on a wildcard).
func appendDetailed(dst []byte, r *Rule, entries []Entry, shared bool) []byte {
	if r.Parent != nil {
		dst = appendDetailed(dst, r.Parent, entries, shared)
	}
	e := entries[r.Depth]
	dst = append(dst, '.')
	dst = append(dst, e.Key...)
	switch {
	case !shared:
		dst = append(dst, '_')
		dst = append(dst, e.Value...)
	case r.ShareThreshold && r.Wildcard():
		dst = append(dst, '_')
		dst = append(dst, r.Value...)
	case e.Value != "":
		dst = append(dst, '_')
		dst = append(dst, e.Value...)
	}
	return dst
}

// AppendOverrideStatsKey appends the stats key the reference service
// gives a descriptor that carries its own limit (a limit override): the
// domain, then key_value per entry (key alone for an empty value), joined
// by '.'.
func AppendOverrideStatsKey(dst []byte, domain string, entries []Entry) []byte {
	dst = append(dst, domain...)
	for _, e := range entries {
		dst = append(dst, '.')
		dst = append(dst, e.Key...)
		if e.Value != "" {
			dst = append(dst, '_')
			dst = append(dst, e.Value...)
		}
	}
	return dst
}
