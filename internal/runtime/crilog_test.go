package runtime

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCRILogWriter(t *testing.T) {
	ts := time.Date(2026, 11, 25, 20, 0, 0, 0, time.FixedZone("CET", 3600))
	const stamp = "2026-11-25T19:00:00.000000000Z"
	for _, tc := range []struct {
		name   string
		stream string
		chunks []string // successive reads
		want   string
	}{
		{"one line", StreamStdout, []string{"hi\n"}, stamp + " stdout F hi\n"},
		{"two lines in one read", StreamStdout, []string{"a\nb\n"}, stamp + " stdout F a\n" + stamp + " stdout F b\n"},
		{"empty line", StreamStderr, []string{"\n"}, stamp + " stderr F \n"},
		{"line split across reads", StreamStdout, []string{"hel", "lo\n"}, stamp + " stdout P hel\n" + stamp + " stdout F lo\n"},
		{"unfinished last line", StreamStdout, []string{"a\nprompt> "}, stamp + " stdout F a\n" + stamp + " stdout P prompt> \n"},
		{"carriage return kept", StreamStdout, []string{"x\r\n"}, stamp + " stdout F x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			l := &criLogger{w: &out, now: func() time.Time { return ts }}
			for _, c := range tc.chunks {
				if err := l.write(tc.stream, []byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tc.want)
			}
		})
	}
}

func TestCRILogLongLine(t *testing.T) {
	var out bytes.Buffer
	l := &criLogger{w: &out, now: time.Now}
	line := strings.Repeat("x", 40000)
	if err := l.copyStream(StreamStdout, strings.NewReader(line+"\nend\n")); err != nil {
		t.Fatal(err)
	}
	var entries []LogEntry
	for _, s := range strings.SplitAfter(out.String(), "\n") {
		if s == "" {
			continue
		}
		e, err := ParseLogLine([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Content) > bufSize {
			t.Errorf("entry of %d bytes, more than %d", len(e.Content), bufSize)
		}
		entries = append(entries, e)
	}
	if got := logText(entries, StreamStdout); got != line+"\nend\n" {
		t.Errorf("joined entries differ from the output (%d bytes vs %d)", len(got), len(line)+5)
	}
	if len(entries) < 4 || !entries[0].Partial || entries[len(entries)-1].Partial {
		t.Errorf("want P entries then F: %d entries", len(entries))
	}
}

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    LogEntry
		wantErr bool
	}{
		{line: "2026-11-25T20:00:00.000000000Z stdout F hello world\n", want: LogEntry{Stream: "stdout", Content: []byte("hello world")}},
		{line: "2026-11-25T20:00:00Z stderr P part", want: LogEntry{Stream: "stderr", Partial: true, Content: []byte("part")}},
		{line: "2026-11-25T20:00:00.5Z stdout F", want: LogEntry{Stream: "stdout"}},
		{line: "2026-11-25T20:00:00Z stdout X what", wantErr: true},
		{line: "yesterday stdout F x", wantErr: true},
		{line: "garbage", wantErr: true},
	} {
		got, err := ParseLogLine([]byte(tc.line))
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error", tc.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if got.Stream != tc.want.Stream || got.Partial != tc.want.Partial || !bytes.Equal(got.Content, tc.want.Content) || got.Time.Year() != 2026 {
			t.Errorf("%q: got %+v, want %+v", tc.line, got, tc.want)
		}
	}
}
