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
	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// tokensCmd reports on the token store. count-by-kid counts the tokens
// under each KEK version, by walking the store now (not from the background
// job's last pass), and with -out writes the count `keyservice keys retire
// -token-counts` reads.
func tokensCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "count-by-kid" {
		return errors.New("tokens: want count-by-kid")
	}
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
