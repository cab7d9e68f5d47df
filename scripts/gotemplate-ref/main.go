// Command gotemplate-ref renders the kiln-gotemplate test corpus with Go's own
// text/template so the Rust implementation can be checked byte-for-byte
// against the reference. Usage: gotemplate-ref CORPUS_DIR OUTPUT_FILE
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/template"
)

// testCase is one corpus entry. Data is decoded into plain Go values
// (map[string]any, []any, float64, ...), as encoding/json does.
type testCase struct {
	Name       string `json:"name"`
	Template   string `json:"template"`
	Data       any    `json:"data"`
	MissingKey string `json:"missingkey,omitempty"`
}

// result is what Go produced: the rendered text or the error message.
type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

// funcs mirrors the deterministic part of Ollama's template func map: only
// `json` is needed, the date functions depend on the clock and are tested on
// the Rust side alone.
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
}

func render(c testCase) result {
	t := template.New(c.Name).Funcs(funcs)
	if c.MissingKey != "" {
		t = t.Option("missingkey=" + c.MissingKey)
	}
	t, err := t.Parse(c.Template)
	if err == nil {
		var b bytes.Buffer
		if err = t.Execute(&b, c.Data); err == nil {
			s := b.String()
			return result{Output: &s}
		}
	}
	msg := err.Error()
	return result{Error: &msg}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gotemplate-ref CORPUS_DIR OUTPUT_FILE")
		os.Exit(2)
	}
	files, err := filepath.Glob(filepath.Join(os.Args[1], "*.json"))
	if err != nil {
		panic(err)
	}
	sort.Strings(files)
	results := map[string]result{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			panic(err)
		}
		var cases []testCase
		if err := json.Unmarshal(raw, &cases); err != nil {
			panic(fmt.Sprintf("%s: %v", f, err))
		}
		for _, c := range cases {
			if _, dup := results[c.Name]; dup {
				panic("duplicate case name " + c.Name)
			}
			results[c.Name] = render(c)
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		panic(err)
	}
	if err := os.WriteFile(os.Args[2], out.Bytes(), 0o644); err != nil {
		panic(err)
	}
}
