package settings

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// FlagTable returns the Markdown table of every serve flag: its
// environment variable, default and meaning. docs/configuration.md holds
// it, checked by a test, so the docs cannot drift from the code.
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
