// Command gendocs writes docs/walkthrough.md from its template and the
// transcript of a TestWalkthrough run (`make docs`): every command and
// output in the guide comes from a real run of kite.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

type transcript struct {
	Steps []struct {
		Name     string    `json:"name"`
		Commands []command `json:"commands"`
	} `json:"steps"`
}

// command is one command of a step and its output.
type command struct {
	Command string `json:"command"`
	Output  string `json:"output"`
}

// maxLines bounds one command's output in the guide.
const maxLines = 100

func main() {
	tmplPath := flag.String("template", "docs/walkthrough.md.tmpl", "the guide's template")
	trPath := flag.String("transcript", "", "TestWalkthrough's transcript (JSON)")
	outPath := flag.String("out", "docs/walkthrough.md", "where to write the guide")
	flag.Parse()
	if err := run(*tmplPath, *trPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(tmplPath, trPath, outPath string) error {
	data, err := os.ReadFile(trPath)
	if err != nil {
		return err
	}
	var tr transcript
	if err := json.Unmarshal(data, &tr); err != nil {
		return fmt.Errorf("transcript %s: %w", trPath, err)
	}
	funcs := template.FuncMap{
		// step renders the commands of the step whose name starts with
		// id ("S1") as a shell session.
		"step": func(id string) (string, error) {
			for _, s := range tr.Steps {
				if s.Name == id || strings.HasPrefix(s.Name, id+" ") {
					return session(s.Commands), nil
				}
			}
			return "", fmt.Errorf("no step %s in the transcript", id)
		},
	}
	t, err := template.New("walkthrough").Funcs(funcs).ParseFiles(tmplPath)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, filepath.Base(tmplPath), nil); err != nil {
		return err
	}
	return os.WriteFile(outPath, []byte(b.String()), 0o644)
}

func session(cmds []command) string {
	var b strings.Builder
	b.WriteString("```console\n")
	for _, c := range cmds {
		// Bookkeeping queries of the test (lists for later steps) are
		// not part of the lesson.
		if strings.Contains(c.Command, "jsonpath={range") {
			continue
		}
		fmt.Fprintf(&b, "$ %s\n", c.Command)
		lines := strings.Split(strings.TrimRight(c.Output, "\n"), "\n")
		if len(lines) > maxLines {
			lines = append(lines[:maxLines], fmt.Sprintf("… (%d more lines)", len(lines)-maxLines))
		}
		if out := strings.Join(lines, "\n"); out != "" {
			b.WriteString(out + "\n")
		}
	}
	b.WriteString("```")
	return b.String()
}
