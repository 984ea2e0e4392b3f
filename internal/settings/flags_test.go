package settings

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// FlagTable returns the Markdown table of every serve flag: its
// environment variable, default and meaning. docs/configuration.md holds
// it, checked by TestConfigurationDocIsCurrent, so the docs cannot drift
// from the code.
func FlagTable() string {
	var s Serve
	var b strings.Builder
	b.WriteString("| flag | environment variable | default | meaning |\n|---|---|---|---|\n")
	ServeFlags(&s, io.Discard).VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | %s |\n", f.Name, EnvName(f.Name), def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}

// FlagNames returns the names of every serve flag, sorted; the docs test
// checks that each one is documented.
func FlagNames() []string {
	var s Serve
	var names []string
	ServeFlags(&s, io.Discard).VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}
