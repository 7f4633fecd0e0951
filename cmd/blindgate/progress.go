package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/rewrap"
)

// progress shows a rewrap pass as it goes, on standard error (standard
// output keeps the one result line scripts read): a bar redrawn in place on
// a terminal, otherwise a line every 10 seconds (logs, CI, a pipe).
type progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	every time.Duration
	last  time.Time
	// start and startSeen measure this run's speed for the estimate; a
	// resumed pass starts from where the last one stopped.
	start     time.Time
	startSeen int
	started   bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, tty: isTerminal(w), now: time.Now, every: 10 * time.Second}
	if p.tty {
		p.every = 200 * time.Millisecond
	}
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(pr rewrap.Progress) {
	now := p.now()
	if !p.started {
		p.start, p.startSeen, p.started = now, pr.Seen-1, true
		p.last = now
		if p.tty {
			p.last = now.Add(-p.every) // a terminal shows the bar at once
		}
	}
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.draw(pr, now)
}

// finish draws the last state and ends the bar's line.
func (p *progress) finish(pr rewrap.Progress) {
	if !p.started {
		return
	}
	if p.tty {
		p.draw(pr, p.now())
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(pr rewrap.Progress, now time.Time) {
	eta := time.Duration(-1)
	if done := pr.Seen - p.startSeen; done > 0 && pr.Total > pr.Seen {
		eta = time.Duration(float64(now.Sub(p.start)) / float64(done) * float64(pr.Total-pr.Seen)).Round(time.Second)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", barLine(pr, 30, eta))
		return
	}
	fmt.Fprintln(p.w, textLine(pr, eta))
}

// barLine is the terminal's line: "rewrap kid:k [#####.....]  50% ...".
// Counts come before their names ("12 moved"), so nothing here reads like
// the result line's "moved 12".
func barLine(pr rewrap.Progress, width int, eta time.Duration) string {
	filled := int(pr.Ratio() * float64(width))
	s := fmt.Sprintf("rewrap %s [%s%s] %3d%%  %d/%d tokens  %d moved  %d refreshed  %d failed",
		pr.Scope, strings.Repeat("#", filled), strings.Repeat(".", width-filled), int(100*pr.Ratio()),
		pr.Seen, pr.Total, pr.Moved, pr.Refreshed, pr.Failed)
	if eta >= 0 {
		s += "  eta " + eta.String()
	}
	return s + "  " // covers the tail of a longer previous line
}

func textLine(pr rewrap.Progress, eta time.Duration) string {
	s := fmt.Sprintf("rewrap %s: %d%% (%d of %d tokens; %d moved, %d refreshed, %d failed)",
		pr.Scope, int(100*pr.Ratio()), pr.Seen, pr.Total, pr.Moved, pr.Refreshed, pr.Failed)
	if eta >= 0 {
		s += ", about " + eta.String() + " left"
	}
	return s
}
