package bench

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// samples are latencies of single operations.
type samples []time.Duration

// q is the nearest-rank quantile (0 < q ≤ 1); 0 when there are no samples.
func (s samples) q(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(float64(len(c))*q+0.999999) - 1
	return c[max(0, min(i, len(c)-1))]
}

func (s samples) p50() time.Duration { return s.q(0.50) }
func (s samples) p99() time.Duration { return s.q(0.99) }
func (s samples) max() time.Duration { return s.q(1) }

// ms is a duration in milliseconds, for b.ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtMS prints a duration in milliseconds with precision fit for its size.
func fmtMS(d time.Duration) string {
	v := ms(d)
	switch {
	case v < 0 && v > -10 || v >= 0 && v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100 && v > -100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func fmtMiB(bytes uint64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// table is a human-readable report, printed after a benchmark's results.
type table struct {
	title string
	head  []string
	rows  [][]string
	notes []string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

func (t *table) print() {
	if len(t.rows) == 0 {
		return
	}
	fmt.Printf("\n%s\n", t.title)
	// AlignRight suits the numbers; the label column is padded by hand to
	// stay left-aligned.
	width := 0
	for _, r := range append([][]string{t.head}, t.rows...) {
		width = max(width, utf8.RuneCountInString(r[0]))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells []string) {
		fmt.Fprintf(w, "  %-*s\t%s\t\n", width, cells[0], strings.Join(cells[1:], "\t"))
	}
	line(t.head)
	for _, r := range t.rows {
		line(r)
	}
	w.Flush()
	for _, n := range t.notes {
		fmt.Printf("  %s\n", n)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
