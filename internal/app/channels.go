package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
)

// The receiver verifies CRM notification tokens with the KV-backed verifier.
var _ receiver.ChannelTokenVerifier = (*channels.TokenVerifier)(nil)

// channelsCommand runs `worker channels list|sync|disable`.
func channelsCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker channels list [flags]
       worker channels sync -rules FILE -notify-url URL [flags]
       worker channels disable [flags] [CHANNEL_ID ...]

CRM notification channels that zohook keeps subscribed (one per module).
list shows them as Zoho and the channel bucket see them; sync subscribes,
renews and trims them to what the rules need (the worker does this by
itself); disable unsubscribes the given channels, or all of zohook's.`
	if code, ok := verbHelp(args, synopsis, stdout, stderr); !ok {
		return code
	}
	verb := args[0]
	switch verb {
	case "list", "sync", "disable":
	default:
		fmt.Fprintf(stderr, "channels: unknown command %q\n%s\n", verb, synopsis)
		return ExitUsage
	}
	fs, o := opsFlags("channels "+verb, synopsis, stderr)
	notifyURL := fs.String("notify-url", "", "the receiver's public CRM notification `URL` (https://host/zoho/crm/notify)")
	rulesFile := fs.String("rules", "rules.yaml", "rules `file` whose crm.notify triggers decide the events")
	conn := fs.String("connection", "default", "Zoho connection `name`")
	cfgFile := fs.String("config", "", "configuration `file` with Zoho connections (else ZOHOOK_ZOHO_* variables)")
	expiry := fs.Duration("channel-expiry", channels.DefaultExpiry, "expiry requested for each channel (max 168h)")
	margin := fs.Duration("channel-renew-margin", channels.DefaultRenewMargin, "renew channels expiring within this `duration`")
	var asJSON *bool
	maxArgs := 0
	switch verb {
	case "list":
		asJSON = config.ActionBool(fs, "json", "print the channels as JSON: {\"channels\": [...], \"count\": N}")
	case "disable":
		maxArgs = -1 // channel ids
	}
	if code, ok := parseCommand(fs, args[1:], getenv, stdout, stderr, maxArgs); !ok {
		return code
	}
	if verb == "sync" && *notifyURL == "" {
		fmt.Fprintln(stderr, "channels sync: -notify-url is required")
		return ExitUsage
	}
	log := opsLogger(stderr)
	var needed []string
	if verb == "sync" {
		set, err := rules.Load(*rulesFile)
		if err != nil {
			fmt.Fprintln(stderr, "channels:", err)
			return ExitFailure
		}
		needed = channels.NeededEvents(set.Rules(), *conn, log)
	}
	zc, err := channelsZohoConfig(*cfgFile, *conn, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "channels:", err)
		return ExitUsage
	}
	bb, err := openOps(ctx, *o, "zohook-channels", log)
	if err != nil {
		fmt.Fprintln(stderr, "channels:", err)
		return ExitFailure
	}
	defer bb.Close()
	// The fleet's shared access token when one is cached: no refresh spent.
	_, ts, err := sharedToken(ctx, bb.JS, *conn, zc, "channels")
	if err != nil {
		fmt.Fprintln(stderr, "channels: zoho access token:", err)
		return ExitFailure
	}
	client, err := zoho.NewClient(zc, zoho.WithLogger(log), zoho.WithTokenSource(ts))
	if err != nil {
		fmt.Fprintln(stderr, "channels:", err)
		return ExitFailure
	}
	connName := *conn
	if connName == "default" {
		connName = "" // the receiver's default connection
	}
	url := *notifyURL
	if url == "" {
		url = "-" // list and disable never send it
	}
	m, err := channels.NewManager(ctx, bb.JS, client.CRM, channels.Config{Connection: connName, NotifyURL: url,
		Expiry: *expiry, RenewMargin: *margin, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "channels:", err)
		return ExitUsage
	}
	switch verb {
	case "list":
		sts, err := m.List(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "channels:", err)
			return ExitFailure
		}
		if *asJSON {
			out := channelsListJSON{Channels: []channelJSON{}, Count: len(sts)}
			for _, s := range sts {
				out.Channels = append(out.Channels, channelJSON{ChannelID: s.ChannelID, Module: s.Module, Events: append([]string{}, s.Events...), NotifyURL: s.NotifyURL,
					Expiry: s.Expiry, AtZoho: s.AtZoho, InBucket: s.InBucket, TokenMatches: s.TokenMatches})
			}
			return writeJSON(stdout, stderr, out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHANNEL\tMODULE\tEVENTS\tEXPIRES\tAT ZOHO\tIN BUCKET\tTOKEN OK\tNOTIFY URL")
		for _, s := range sts {
			exp := "-"
			if !s.Expiry.IsZero() {
				exp = s.Expiry.Format(time.RFC3339) + " (in " + config.FormatDuration(time.Until(s.Expiry).Round(time.Minute)) + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\t%v\t%s\n", s.ChannelID, s.Module, strings.Join(s.Events, ","), exp,
				s.AtZoho, s.InBucket, s.TokenMatches, s.NotifyURL)
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "%d channel(s)\n", len(sts))
		return ExitOK
	case "sync":
		rep, err := m.Sync(ctx, needed)
		fmt.Fprintf(stdout, "needed: %s\ncreated: %d  resubscribed: %d  updated: %d  renewed: %d  disabled: %d  unchanged: %d\n",
			strings.Join(needed, ","), len(rep.Created), len(rep.Resubscribed), len(rep.Updated), len(rep.Renewed), len(rep.Disabled), len(rep.Unchanged))
		if err != nil {
			fmt.Fprintln(stderr, "channels:", err)
			return ExitFailure
		}
		return ExitOK
	default: // disable
		ids, err := m.Disable(ctx, fs.Args()...)
		if err != nil {
			fmt.Fprintln(stderr, "channels:", err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "%d channel(s) disabled: %s\n", len(ids), strings.Join(ids, ","))
		return ExitOK
	}
}

// channelsListJSON is `worker channels list -json`.
type channelsListJSON struct {
	Channels []channelJSON `json:"channels"`
	Count    int           `json:"count"`
}

// channelJSON is one of zohook's channels as Zoho and the channel bucket see it.
type channelJSON struct {
	ChannelID    string    `json:"channel_id"`
	Module       string    `json:"module"`
	Events       []string  `json:"events"`          // as Zoho has them; empty when Zoho does not have the channel
	NotifyURL    string    `json:"notify_url"`      // where Zoho sends them
	Expiry       time.Time `json:"expiry,omitzero"` // Zoho's expiry; absent when Zoho does not have the channel
	AtZoho       bool      `json:"at_zoho"`         // Zoho has the channel
	InBucket     bool      `json:"in_bucket"`       // zohook's channel bucket has it (with its token)
	TokenMatches bool      `json:"token_matches"`   // Zoho's token equals the stored one (else the receiver refuses its notifications)
}

// channelsZohoConfig picks the connection from the configuration file, or
// the ZOHOOK_ZOHO_* variables for the default connection.
func channelsZohoConfig(file, conn string, getenv func(string) string) (zoho.Config, error) {
	if file != "" {
		f, err := config.LoadFile(file)
		if err != nil {
			return zoho.Config{}, err
		}
		if c, ok := f.Connections[conn]; ok {
			zc, err := connectionConfig(conn, c, getenv)
			if err != nil {
				return zoho.Config{}, err
			}
			return zc, zc.Validate()
		}
	}
	if conn != "default" {
		return zoho.Config{}, fmt.Errorf("connection %q is not in the configuration file", conn)
	}
	zc, err := zoho.ConfigFromEnv(getenv)
	if err != nil {
		return zoho.Config{}, err
	}
	return zc, zc.Validate()
}
