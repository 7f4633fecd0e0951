package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/blindgate/blindgate/gateway/app"
	"github.com/blindgate/blindgate/gateway/rewrap"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// tokensCmd reports on and maintains the token store: count-by-kid or
// reindex.
func tokensCmd(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "count-by-kid":
			return countByKidCmd(ctx, args, out)
		case "reindex":
			return reindexCmd(ctx, args[1:], out, errw)
		}
	}
	return errors.New("tokens: want count-by-kid or reindex")
}

// countByKidCmd counts the tokens under each KEK version, by walking the
// store now (not from the background job's last pass), and with -out writes
// the count `keyservice keys retire -token-counts` reads.
func countByKidCmd(ctx context.Context, args []string, out io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("tokens count-by-kid", flag.ContinueOnError)
	cfg.StoreFlags(fs)
	audience := fs.String("keyservice-audience", envOr("BLINDGATE_GW_KEYSERVICE_AUDIENCE", ""), "the key service's deployment id, recorded in the count so that only that key service accepts it")
	outPath := fs.String("out", "", "write the count as JSON to this file, for `keyservice keys retire -token-counts`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *outPath != "" && *audience == "" {
		return errors.New("tokens count-by-kid: -out needs -keyservice-audience (the key service checks the count is its own)")
	}
	st, err := app.OpenStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	// Dated at the start: a token made during the walk may be missed, and
	// the date is what the key service compares with the rotation.
	started := time.Now().UTC()
	counts, total, err := rewrap.CountByKid(ctx, st.Tokens)
	if err != nil {
		return err
	}
	report := wire.TokenCounts{Audience: *audience, GeneratedAt: started, Total: total, Kids: counts}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tTOKENS")
	for _, kid := range rewrap.Kids(counts) {
		fmt.Fprintf(tw, "%s\t%d\n", kid, counts[kid])
	}
	fmt.Fprintf(tw, "total\t%d\n", total)
	if err := tw.Flush(); err != nil {
		return err
	}
	if *outPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*outPath, append(b, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(out, "count of %s written to %s; `keyservice keys retire -token-counts %s` accepts it for %s\n",
		started.Format(time.RFC3339), *outPath, *outPath, wire.CountMaxAge)
	return nil
}

// reindexCmd lists the tokens stored before the search index existed
// (tokens.Reindex): once after upgrading from a version without it, when
// every gateway runs a version that writes it. A pass cut short resumes
// from its saved position at the next run; -restart starts over. Until it
// is done the back office's searches of the merchants not yet listed read
// their tokens whole (slow on large stores, never wrong) and say so.
func reindexCmd(ctx context.Context, args []string, out, errw io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("tokens reindex", flag.ContinueOnError)
	cfg.StoreFlags(fs)
	rate := fs.Int("rate", 2000, "tokens listed per second at most, so checkouts keep their latency while it runs (0: no cap)")
	restart := fs.Bool("restart", false, "discard the saved position of an interrupted pass and start over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate < 0 {
		return errors.New("tokens reindex: -rate must be >= 0")
	}
	st, err := app.OpenStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	last := time.Time{}
	show := func(p tokens.ReindexProgress) {
		if now := time.Now(); now.Sub(last) >= 10*time.Second {
			last = now
			fmt.Fprintf(errw, "reindex: %d of %d tokens, %d merchants complete\n", p.Seen, p.Total, p.Merchants)
		}
	}
	p, err := tokens.Reindex(ctx, st.Tokens, tokens.ReindexOptions{Rate: float64(*rate), Restart: *restart, Progress: show})
	if p.Resumed {
		fmt.Fprintf(out, "resumed a pass started %s; the counts include its earlier runs\n", p.Started.UTC().Format(time.RFC3339))
	}
	// One line, stable for scripts: skipped = changed or deleted meanwhile
	// (their writes kept the index).
	fmt.Fprintf(out, "reindex: seen %d, listed %d, skipped %d, merchants complete %d\n", p.Seen, p.Listed, p.Skipped, p.Merchants)
	if err != nil {
		return fmt.Errorf("%w (position saved: run the same command again to go on)", err)
	}
	status, err := st.Tokens.IndexStatus(ctx, "")
	if err != nil {
		return err
	}
	if !status.Ready() {
		// Tokens a gateway of an older version wrote meanwhile.
		return fmt.Errorf("tokens reindex: %d of %d merchants still lack index entries; is a gateway of an older version still writing? run this again once every gateway is upgraded", status.Building, status.Merchants)
	}
	fmt.Fprintf(out, "search index complete for %d merchants\n", status.Merchants)
	return nil
}
