// Command benchresults turns the output of `go test -bench ./bench/...`
// (on stdin) into bench/RESULTS.md: the date, and every table and figure
// the benchmarks printed — each with the machine it ran on — without the
// components' log lines.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// logLine matches klog output (I1125 23:58:53.830098 …) and Go test noise.
var logLine = regexp.MustCompile(`^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ |^=== RUN|^--- (PASS|SKIP)`)

func main() {
	var body strings.Builder
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if logLine.MatchString(line) {
			continue
		}
		body.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "benchresults:", err)
		os.Exit(1)
	}
	fmt.Printf(`# kite benchmark results

Written by `+"`make bench`"+` on %s. Every benchmark prints the machine it ran
on, absolute figures, and ratios measured side by side in the same run;
where a benchmark repeats a measurement it prints the median with min–max.
Traffic stays inside network namespaces the benchmarks make.

`+"```"+`
%s`+"```"+`
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), body.String())
}
