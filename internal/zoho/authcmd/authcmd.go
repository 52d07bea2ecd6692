package authcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/zoho"
)

// Exit codes (the convention of every zohook command).
const (
	exitOK    = config.ExitOK
	exitFail  = config.ExitFailure
	exitUsage = config.ExitUsage
)

const usage = `usage: worker auth <command> [flags]

commands:
  exchange -code CODE [-redirect-uri URI]   trade a self-client grant code for a refresh token
  login [-listen 127.0.0.1:8085]            authorization-code flow through your browser
  revoke                                    revoke ZOHOOK_ZOHO_REFRESH_TOKEN
  token [-refresh]                          check that an access token is obtainable: the
                                            fleet's shared token when NATS has a valid one
                                            (no refresh spent), else one refresh (Zoho allows
                                            10 per 10 minutes per refresh token)

Configuration: ZOHOOK_ZOHO_CLIENT_ID, ZOHOOK_ZOHO_CLIENT_SECRET, ZOHOOK_ZOHO_REFRESH_TOKEN,
ZOHOOK_ZOHO_DC (us|eu|in|au|jp|ca|cn|sa), ZOHOOK_ZOHO_ACCOUNTS_URL, ZOHOOK_ZOHO_SCOPES.
Run "worker auth <command> -h" for the flags of a command.
`

// Options give Run what lives outside this package.
type Options struct {
	// Fleet, when set, lets `auth token` use the worker fleet's shared
	// access token (cached in NATS) instead of spending a refresh.
	Fleet Fleet
}

// Fleet reaches the worker fleet's shared access-token cache.
type Fleet interface {
	// Register adds the flags saying how to reach it (NATS connection
	// flags) to `auth token`'s flags.
	Register(fs *flag.FlagSet)
	// Token returns the fleet's cached access token of the connection
	// when one is valid (Cached: no refresh spent); otherwise it refreshes
	// once through cfg and, when it can, shares the new token with the
	// fleet. Note says why the cache could not be used, if it could not.
	Token(ctx context.Context, conn string, cfg zoho.Config) (*SharedToken, error)
}

// SharedToken is what Fleet.Token got.
type SharedToken struct {
	Token *zoho.Token
	// Cached: the fleet's token, no refresh spent.
	Cached bool
	// Grant: Zoho's answer to the refresh, when one was spent.
	Grant *zoho.Grant
	// Shared: the refreshed token is now in the fleet's cache.
	Shared bool
	// Note: why the fleet's cache was not used, when it was not.
	Note string
}

// Run executes `worker auth` with args (without "auth") and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return RunWith(ctx, args, stdout, stderr, getenv, Options{})
}

// RunWith is Run with options.
func RunWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, opts Options) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, config.ExitCodesHelp)
		return exitOK
	}
	r := &runner{getenv: getenv, out: stdout, errw: stderr, hc: &http.Client{Timeout: 30 * time.Second}, opts: opts}
	switch args[0] {
	case "exchange":
		return r.exchange(ctx, args[1:])
	case "login":
		return r.login(ctx, args[1:])
	case "revoke":
		return r.revoke(ctx, args[1:])
	case "token":
		return r.token(ctx, args[1:])
	}
	fmt.Fprintf(stderr, "worker auth: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

type runner struct {
	getenv func(string) string
	cfg    zoho.Config
	out    io.Writer
	errw   io.Writer
	hc     *http.Client
	opts   Options
}

// flags is a command's flag set; about follows the synopsis in -h.
func (r *runner) flags(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("worker auth "+name, flag.ContinueOnError)
	fs.SetOutput(r.errw)
	fs.Usage = config.Usage(fs, "ZOHOOK_", "usage: worker auth "+synopsis+"\n\n"+about+"\n\n"+configHelp)
	return fs
}

const configHelp = `The Zoho client comes from ZOHOOK_ZOHO_CLIENT_ID, ZOHOOK_ZOHO_CLIENT_SECRET,
ZOHOOK_ZOHO_REFRESH_TOKEN, ZOHOOK_ZOHO_DC and ZOHOOK_ZOHO_ACCOUNTS_URL.`

// parse parses a command's flags (config.ParseCommand: -h to stdout,
// exit 2 on a bad flag or a stray argument), then reads the Zoho
// configuration. It returns (exit code, done).
func (r *runner) parse(fs *flag.FlagSet, args []string) (int, bool) {
	if code, ok := config.ParseCommand(fs, args, r.getenv, r.out, r.errw, 0); !ok {
		return code, true
	}
	cfg, err := zoho.ConfigFromEnv(r.getenv)
	if err != nil {
		fmt.Fprintln(r.errw, "worker auth:", err)
		return exitFail, true
	}
	r.cfg = cfg
	return exitOK, false
}

// actionString is an action flag (never read from ZOHOOK_*) with a default.
func actionString(fs *flag.FlagSet, name, def, usage string) *string {
	p := config.ActionString(fs, name, usage)
	*p = def
	fs.Lookup(name).DefValue = def
	return p
}

// actionDuration is an action flag (never read from ZOHOOK_*) with a default.
func actionDuration(fs *flag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	p := config.ActionDuration(fs, name, usage)
	*p = def
	fs.Lookup(name).DefValue = config.FormatDuration(def)
	return p
}

func (r *runner) fail(err error) int {
	fmt.Fprintln(r.errw, "worker auth:", err)
	var te *zoho.TokenError
	if errors.As(err, &te) {
		switch {
		case te.Code == "invalid_client":
			fmt.Fprintln(r.errw, "hint: the client id is unknown in this data center; check ZOHOOK_ZOHO_DC / ZOHOOK_ZOHO_ACCOUNTS_URL (and enable multi-DC for the client)")
		case te.Code == "invalid_code":
			fmt.Fprintln(r.errw, "hint: the code (or refresh token) is expired, used or revoked; grant codes live only a few minutes")
		case te.Throttled():
			fmt.Fprintln(r.errw, "hint: Zoho allows 10 token requests per 10 minutes; wait and retry")
		}
	}
	return exitFail
}

func (r *runner) exchange(ctx context.Context, args []string) int {
	fs := r.flags("exchange", "exchange -code CODE [-redirect-uri URI]",
		"Trades a grant code from the API console (Self Client → Generate Code, with the scopes\nthe rules need) for a refresh token, and prints the variables to set.")
	code := config.ActionString(fs, "code", "grant `code` from the API console (Self Client → Generate Code); it lives a few minutes")
	redirect := config.ActionString(fs, "redirect-uri", "redirect `URI` registered for the client (not needed for a self client)")
	if rc, done := r.parse(fs, args); done {
		return rc
	}
	if *code == "" {
		fmt.Fprintln(r.errw, "worker auth exchange: -code is required (see -h)")
		return exitUsage
	}
	if err := r.cfg.ValidateClient(); err != nil {
		return r.fail(err)
	}
	g, err := zoho.NewOAuth(r.cfg, r.hc).Exchange(ctx, *code, *redirect)
	if err != nil {
		return r.fail(err)
	}
	return r.printGrant(g, r.cfg, "")
}

// printGrant prints the refresh token and the variables to set.
func (r *runner) printGrant(g *zoho.Grant, cfg zoho.Config, location string) int {
	if g.RefreshToken == "" {
		fmt.Fprintln(r.errw, "worker auth: Zoho returned no refresh token; the consent must ask for access_type=offline (and prompt=consent when re-authorizing)")
		return exitFail
	}
	fmt.Fprintf(r.out, "Refresh token obtained (api_domain %s, scope %s).\n", g.APIDomain, g.Scope)
	fmt.Fprintln(r.out, "Set these environment variables for the worker:")
	fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvRefreshToken, g.RefreshToken)
	if dc, ok := zoho.DCForAccountsURL(cfg.Accounts()); ok {
		fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvDC, dc.Name)
	} else {
		fmt.Fprintf(r.out, "%s=%s\n", zoho.EnvAccountsURL, cfg.Accounts())
		if location != "" {
			fmt.Fprintf(r.out, "# Zoho reported location %q\n", location)
		}
	}
	fmt.Fprintf(r.out, "# API calls will go to %s (api_domain from the token response)\n", g.APIDomain)
	return exitOK
}

func randomState() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random state: %w", err)
	}
	return hex.EncodeToString(b), nil
}

type callback struct {
	code, accountsServer, location string
	err                            error
}

func (r *runner) login(ctx context.Context, args []string) int {
	fs := r.flags("login", "login [-listen 127.0.0.1:8085] [-redirect-uri URI] [-timeout 5m]",
		"Runs the authorization-code flow: prints a consent URL to open in a browser, receives\nZoho's redirect on a local server, and prints the refresh token and the variables to set.")
	listen := actionString(fs, "listen", "127.0.0.1:8085", "`address` of the local callback server")
	redirect := config.ActionString(fs, "redirect-uri", "redirect `URI` registered for the client (default http://LISTEN/callback)")
	timeout := actionDuration(fs, "timeout", 5*time.Minute, "how long to wait for the browser")
	if rc, done := r.parse(fs, args); done {
		return rc
	}
	if err := r.cfg.ValidateClient(); err != nil {
		return r.fail(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return r.fail(fmt.Errorf("listen %s: %w", *listen, err))
	}
	defer ln.Close()
	redirectURI := *redirect
	if redirectURI == "" {
		redirectURI = "http://" + ln.Addr().String() + "/callback"
	}
	state, err := randomState()
	if err != nil {
		return r.fail(err)
	}
	results := make(chan callback, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		cb := callback{code: q.Get("code"), accountsServer: q.Get("accounts-server"), location: q.Get("location")}
		switch {
		case q.Get("state") != state:
			http.Error(w, "state mismatch: restart `worker auth login`", http.StatusBadRequest)
			return // a stray or forged request must not end the flow
		case q.Get("error") != "":
			cb.err = fmt.Errorf("consent refused: %s", q.Get("error"))
		case cb.code == "":
			cb.err = errors.New("callback without code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if cb.err != nil {
			fmt.Fprintf(w, "<p>zohook: %s</p>", html.EscapeString(cb.err.Error()))
		} else {
			fmt.Fprint(w, "<p>zohook: authorization received, you can close this tab.</p>")
		}
		select {
		case results <- cb:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	fmt.Fprintln(r.out, "Open this URL in a browser and approve access:")
	fmt.Fprintln(r.out, zoho.NewOAuth(r.cfg, r.hc).AuthCodeURL(redirectURI, state))
	fmt.Fprintf(r.out, "Waiting for the redirect to %s ...\n", redirectURI)

	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var cb callback
	select {
	case cb = <-results:
	case <-wctx.Done():
		return r.fail(fmt.Errorf("no redirect received: %w", wctx.Err()))
	}
	if cb.err != nil {
		return r.fail(cb.err)
	}
	cfg := r.cfg
	if cb.accountsServer != "" && !strings.EqualFold(strings.TrimRight(cb.accountsServer, "/"), cfg.Accounts()) {
		// The user's DC differs (§1.2): the code must be exchanged there. Only
		// Zoho's own accounts servers are trusted with the client secret.
		dc, ok := zoho.DCForAccountsURL(cb.accountsServer)
		if !ok {
			return r.fail(fmt.Errorf("refusing accounts-server %q: not a known Zoho accounts server", cb.accountsServer))
		}
		cfg.DC, cfg.AccountsURL = dc.Name, ""
		fmt.Fprintf(r.out, "Your account lives in data center %q (%s).\n", dc.Name, dc.AccountsURL)
	}
	g, err := zoho.NewOAuth(cfg, r.hc).Exchange(ctx, cb.code, redirectURI)
	if err != nil {
		return r.fail(err)
	}
	return r.printGrant(g, cfg, cb.location)
}

func (r *runner) revoke(ctx context.Context, args []string) int {
	fs := r.flags("revoke", "revoke", "Revokes ZOHOOK_ZOHO_REFRESH_TOKEN at Zoho; its access tokens (the fleet's shared one\nincluded) stop working too.")
	if rc, done := r.parse(fs, args); done {
		return rc
	}
	if err := r.cfg.Validate(); err != nil {
		return r.fail(err)
	}
	if err := zoho.NewOAuth(r.cfg, r.hc).Revoke(ctx, r.cfg.RefreshToken); err != nil {
		return r.fail(err)
	}
	fmt.Fprintf(r.out, "Refresh token revoked; its access tokens are dead too. Remove %s.\n", zoho.EnvRefreshToken)
	return exitOK
}

func (r *runner) token(ctx context.Context, args []string) int {
	about := `Checks that zohook can get an access token for the default connection, and prints
its expiry, api_domain and the API bases calls use (never the token).

Zoho allows 10 access-token refreshes per 10 minutes per refresh token, and the
workers share one token through NATS. So this command first looks for the
fleet's shared token in NATS: when a valid one is cached it is used and no
refresh is spent (your refresh token is then not exercised). Otherwise it
spends one refresh, and the new token is shared with the workers. -refresh
always spends one, to check the refresh token itself (not shared).`
	if r.opts.Fleet == nil {
		about = "Checks the configuration by minting an access token: this spends one of Zoho's 10\nrefreshes per 10 minutes per refresh token. Prints its expiry and api_domain (never the token)."
	}
	fs := r.flags("token", "token [-refresh] [flags]", about)
	force := config.ActionBool(fs, "refresh", "spend a refresh even when the fleet has a valid token (checks the refresh token; one of Zoho's 10 per 10 minutes)")
	if r.opts.Fleet != nil {
		r.opts.Fleet.Register(fs)
	}
	if rc, done := r.parse(fs, args); done {
		return rc
	}
	if err := r.cfg.Validate(); err != nil {
		return r.fail(err)
	}
	var st *SharedToken
	if r.opts.Fleet != nil && !*force {
		var err error
		if st, err = r.opts.Fleet.Token(ctx, "default", r.cfg); err != nil {
			return r.fail(err)
		}
	} else {
		g, err := zoho.NewOAuth(r.cfg, r.hc).Refresh(ctx)
		if err != nil {
			return r.fail(err)
		}
		st = &SharedToken{Token: &zoho.Token{AccessToken: g.AccessToken, APIDomain: g.APIDomain, Expiry: g.Expiry}, Grant: g}
	}
	if st.Note != "" {
		fmt.Fprintln(r.errw, "worker auth token:", st.Note)
	}
	tok := st.Token
	switch {
	case st.Cached:
		fmt.Fprintln(r.out, "Access token OK: the fleet's shared token, cached in NATS (no refresh spent; not shown).")
	case st.Shared:
		fmt.Fprintln(r.out, "Configuration OK: access token minted (not shown). This spent one of Zoho's 10 refreshes per 10 minutes;\nthe new token is now shared with the workers through NATS.")
	default:
		fmt.Fprintln(r.out, "Configuration OK: access token minted (not shown). This spent one of Zoho's 10 refreshes per 10 minutes.")
	}
	fmt.Fprintf(r.out, "api_domain: %s\nexpires:    %s (in %s)\n", tok.APIDomain, tok.Expiry.Format(time.RFC3339), time.Until(tok.Expiry).Round(time.Second))
	if st.Grant != nil && st.Grant.Scope != "" {
		fmt.Fprintf(r.out, "scope:      %s\n", strings.Join(ParseScopes(st.Grant.Scope), " "))
	}
	fmt.Fprintf(r.out, "CRM base:   %s\nBooks base: %s\n", r.cfg.CRMBase(tok.APIDomain), r.cfg.BooksBase(tok.APIDomain))
	if st.Cached {
		fmt.Fprintln(r.out, "Your refresh token was not used: \"worker auth token -refresh\" checks it, spending one refresh.")
	}
	return exitOK
}
